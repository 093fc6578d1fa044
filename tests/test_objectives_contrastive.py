"""Unit tests of the contrastive baselines (SimCLR, CMC, Cosmo, FOCAL), their losses and augmentations."""

import logging
import math

import pytest
import torch

from spar.models.objectives.augment import AugmentSettings, augment_batch, band_mask, node_dropout
from spar.models.objectives.base import OBJECTIVES, pooled_modality_embeddings
from spar.models.objectives.contrastive import (
    CMC,
    FOCAL,
    Cosmo,
    SimCLR,
    info_nce,
    isolated_modality_embeddings,
    nt_xent,
    orthogonality_loss,
    pairwise_info_nce,
    temporal_ranking_loss,
)
from spar.models.spar import ModelConfig, SparModel
from spar.models.tokens import DataShape, ModalityShape

# a tiny backbone without placement inputs, as the baselines use it
MODEL_PARAMS = {
    "dim": 16, "heads": 2, "mlp_ratio": 2.0, "modality_layers": 1, "joint_layers": 1, "decoder_dim": 8,
    "decoder_layers": 1, "structural_dim": 4, "spatial_embedding": False, "structural_embedding": False,
    "spatial_reconstruction": False, "geometric_augmentation": False,
}
TWO_MODALITIES = DataShape(
    modalities={"microphone": ModalityShape(1, 8, 10, 4, 5), "geophone": ModalityShape(2, 4, 10, 2, 5)},
    n_nodes=4, n_global_nodes=6, n_axes=2,
)
ONE_MODALITY = DataShape(modalities={"geophone": ModalityShape(1, 4, 10, 2, 5)}, n_nodes=3, n_global_nodes=3, n_axes=2)
SMALL_HEADS = {"projection_dim": 8, "hidden_dim": 16}
CLASSES = {"simclr": SimCLR, "cmc": CMC, "cosmo": Cosmo, "focal": FOCAL}


def make_model(shape=TWO_MODALITIES, seed=0):
    torch.manual_seed(seed)
    return SparModel(ModelConfig.from_dict(MODEL_PARAMS), shape)


def make_batch(shape=TWO_MODALITIES, batch=6, seed=0):
    """Random standardised signals; slot 3 is empty in even samples, node 1 of sample 0 has no data."""
    g = torch.Generator().manual_seed(seed)
    node_id = torch.arange(shape.n_nodes).repeat(batch, 1) % shape.n_global_nodes
    node_id[::2, -1] = -1
    out = {
        "node_id": node_id,
        "position": torch.randn(batch, shape.n_nodes, shape.n_axes, generator=g),
        "time_s": torch.tensor([0.0, 1.0, 2.0, 10.0, 0.0, 5.0])[:batch],
        "group_index": torch.tensor([0, 0, 0, 0, 1, 1])[:batch],
    }
    for m, ms in shape.modalities.items():
        present = node_id >= 0
        present[0, 1] = False
        signal = torch.randn(batch, shape.n_nodes, ms.channels, ms.freq, ms.frames, generator=g)
        out[f"signal_{m}"] = signal * present[:, :, None, None, None]
        out[f"present_{m}"] = present
    return out


# --- loss functions ---------------------------------------------------------------------


def test_nt_xent_orthogonal_views_by_hand():
    # views [e1, e2] twice at temperature 1: each view has its positive at cosine 1
    # and two negatives at cosine 0, so the loss is -log(e / (e + 2)) = log(1 + 2/e)
    z = torch.eye(2)
    assert math.isclose(float(nt_xent(z, z.clone(), 1.0)), math.log(1 + 2 / math.e), rel_tol=1e-6)


def test_nt_xent_single_pair_is_zero():
    # with B = 1 the positive is the only candidate
    z1, z2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert float(nt_xent(z1, z2, 0.5)) == pytest.approx(0.0, abs=1e-7)


def test_nt_xent_lowest_for_matching_views():
    z1 = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    z2 = torch.randn(8, 16, generator=torch.Generator().manual_seed(2))
    assert float(nt_xent(z1, z1.clone(), 0.5)) < float(nt_xent(z1, z2, 0.5))


def test_nt_xent_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.eye(2), torch.eye(2), 0.0)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(torch.eye(2), torch.eye(3), 0.5)


def test_info_nce_two_by_two_by_hand():
    # a = [e1, e2], b = [e1, e1], temperature 1: logits a.b^T = [[1, 1], [0, 0]]
    # a -> b: both rows are ties, log 2 each
    # b -> a: logits [[1, 0], [1, 0]], targets 0 and 1: log(1 + 1/e) and log(1 + e),
    #   whose mean is log(1 + e) - 1/2
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    expected = 0.5 * (math.log(2) + math.log(1 + math.e) - 0.5)
    assert math.isclose(float(info_nce(a, b, 1.0)), expected, rel_tol=1e-6)


def test_info_nce_uninformative_is_log_batch():
    # identical rows give uniform logits, so each cross entropy is log B
    a = torch.ones(4, 3)
    assert math.isclose(float(info_nce(a, a.clone(), 0.1)), math.log(4), rel_tol=1e-6)


def test_pairwise_info_nce_leaves_out_absent_samples():
    g = torch.Generator().manual_seed(3)
    emb = {"a": torch.randn(5, 4, generator=g), "b": torch.randn(5, 4, generator=g)}
    present = {"a": torch.tensor([True, True, True, False, True]), "b": torch.tensor([True, False, True, True, True])}
    losses = pairwise_info_nce(emb, present, 0.2)
    rows = torch.tensor([0, 2, 4])
    assert list(losses) == [("a", "b")]
    assert torch.allclose(losses[("a", "b")], info_nce(emb["a"][rows], emb["b"][rows], 0.2))


def test_pairwise_info_nce_skips_pair_without_negatives():
    emb = {"a": torch.randn(3, 4), "b": torch.randn(3, 4)}
    present = {"a": torch.tensor([True, False, False]), "b": torch.tensor([True, True, True])}
    assert pairwise_info_nce(emb, present, 0.2) == {}


def test_orthogonality_loss_values():
    shared = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    assert float(orthogonality_loss(shared, torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, -1.0]]))) == 0.0
    # identical rows: cosine 1
    assert math.isclose(float(orthogonality_loss(shared, shared.clone())), 1.0, rel_tol=1e-6)
    # cosines 0.5 and -0.5: squared, both 0.25
    private = torch.tensor([[0.5, math.sqrt(0.75), 0.0], [0.0, -0.5, math.sqrt(0.75)]])
    assert math.isclose(float(orthogonality_loss(shared, private)), 0.25, rel_tol=1e-5)


def test_temporal_ranking_loss_by_hand():
    # one group at t = 0, 1, 5 s, margin 0
    time_s = torch.tensor([0.0, 1.0, 5.0])
    group = torch.tensor([7, 7, 7])
    # embeddings ordered like the times: every neighbour is closer, the loss is 0
    ordered = torch.tensor([[0.0], [1.0], [3.0]])
    assert float(temporal_ranking_loss(ordered, time_s, group, 0.0)) == pytest.approx(0.0, abs=1e-5)
    # embeddings at 0, 3, 1: anchor 0 has near d 3 and far d 1 (hinge 2).
    # Anchor 1 has near d 3 and far d 2 (hinge 1), anchor 2 near d 2 and far d 1 (hinge 1).
    # The mean over the three triplets is 4/3.
    swapped = torch.tensor([[0.0], [3.0], [1.0]])
    assert float(temporal_ranking_loss(swapped, time_s, group, 0.0)) == pytest.approx(4 / 3, rel=1e-5)
    # a margin of 0.5 adds 0.5 to each hinge
    assert float(temporal_ranking_loss(swapped, time_s, group, 0.5)) == pytest.approx(4 / 3 + 0.5, rel=1e-5)


def test_temporal_ranking_loss_ignores_other_groups():
    time_s = torch.tensor([0.0, 1.0, 5.0, 0.5])
    swapped = torch.tensor([[0.0], [3.0], [1.0], [0.2]])
    # the fourth window belongs to another group, so the value stays 4/3
    loss = temporal_ranking_loss(swapped, time_s, torch.tensor([7, 7, 7, 8]), 0.0)
    assert float(loss) == pytest.approx(4 / 3, rel=1e-5)


def test_temporal_ranking_loss_without_triplet():
    emb = torch.randn(4, 3)
    # two windows per group: each anchor has a neighbour but nothing farther
    assert temporal_ranking_loss(emb, torch.tensor([0.0, 1.0, 0.0, 2.0]), torch.tensor([0, 0, 1, 1]), 0.1) is None


# --- augmentations ----------------------------------------------------------------------


def test_augment_deterministic_for_seed():
    batch = make_batch()
    modalities = sorted(TWO_MODALITIES.modalities)
    a = augment_batch(batch, modalities, AugmentSettings(), torch.Generator().manual_seed(11))
    b = augment_batch(batch, modalities, AugmentSettings(), torch.Generator().manual_seed(11))
    c = augment_batch(batch, modalities, AugmentSettings(), torch.Generator().manual_seed(12))
    for m in modalities:
        assert torch.equal(a[f"signal_{m}"], b[f"signal_{m}"])
        assert torch.equal(a[f"present_{m}"], b[f"present_{m}"])
    assert not torch.equal(a["signal_microphone"], c["signal_microphone"])


def test_augment_leaves_input_unchanged():
    batch = make_batch()
    before = {k: v.clone() for k, v in batch.items()}
    out = augment_batch(batch, sorted(TWO_MODALITIES.modalities), AugmentSettings(), torch.Generator().manual_seed(0))
    assert out is not batch
    for k, v in before.items():
        assert torch.equal(batch[k], v), k


def test_augment_keeps_absent_nodes_zero_and_absent():
    batch = make_batch()
    for seed in range(5):
        out = augment_batch(batch, sorted(TWO_MODALITIES.modalities), AugmentSettings(node_dropout=0.5),
                            torch.Generator().manual_seed(seed))
        for m in TWO_MODALITIES.modalities:
            present = out[f"present_{m}"]
            # a view's nodes are a subset of the input's
            assert not (present & ~batch[f"present_{m}"]).any()
            assert out[f"signal_{m}"][~present].abs().sum() == 0


def test_node_dropout_keeps_one_node_per_sample():
    present = torch.zeros(200, 4, dtype=torch.bool)
    present[:, :2] = True
    present[::3, 1] = False  # every third sample has a single node
    present[5] = False  # a sample without data stays without data
    out = node_dropout({"geophone": present}, rate=0.9, generator=torch.Generator().manual_seed(4))["geophone"]
    has_data = present.any(dim=1)
    assert out[has_data].any(dim=1).all()
    assert not out[5].any()
    # at rate 0.9 most two-node samples lose one node, so the check above could fail
    assert (out.sum(dim=1) < present.sum(dim=1)).sum() > 100


def test_node_dropout_shared_by_modalities():
    present = torch.ones(50, 4, dtype=torch.bool)
    out = node_dropout({"a": present, "b": present.clone()}, rate=0.5, generator=torch.Generator().manual_seed(5))
    # the same draws drop the same slots, so only the restored nodes may differ
    assert (out["a"] ^ out["b"]).sum(dim=1).max() <= 2
    assert (out["a"] != present).any()


def test_band_mask_widths_and_contiguity():
    mask = band_mask(100, 2, size=10, max_ratio=0.3, prob=1.0, generator=torch.Generator().manual_seed(6))
    width = mask.sum(dim=-1)
    assert width.max() <= 3
    assert width.max() == 3  # 100 x 2 draws reach the widest band
    # a band is one run: its True entries are consecutive
    for row in mask.view(-1, 10):
        idx = torch.nonzero(row).flatten()
        if idx.numel():
            assert int(idx[-1] - idx[0]) + 1 == idx.numel()
    # probability 0 or a one-bin axis masks nothing
    assert not band_mask(10, 2, 10, 0.3, 0.0, torch.Generator().manual_seed(6)).any()
    assert not band_mask(10, 2, 1, 0.3, 1.0, torch.Generator().manual_seed(6)).any()


def test_augment_gain_only_scales_each_node():
    batch = make_batch()
    settings = AugmentSettings(gain_std=0.5, noise_std=0.0, time_mask_prob=0.0, freq_mask_prob=0.0, node_dropout=0.0)
    out = augment_batch(batch, ["geophone"], settings, torch.Generator().manual_seed(7))
    x, y = batch["signal_geophone"][2, 0], out["signal_geophone"][2, 0]
    ratio = y / x
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-5)
    assert not math.isclose(float(ratio.flatten()[0]), 1.0, rel_tol=1e-3)


def test_augment_settings_reject_bad_values():
    with pytest.raises(ValueError, match="unknown augmentation setting"):
        AugmentSettings.from_dict({"gain": 0.1})
    with pytest.raises(ValueError, match="node_dropout"):
        AugmentSettings(node_dropout=1.0)
    with pytest.raises(ValueError, match="time_mask_ratio"):
        AugmentSettings(time_mask_ratio=1.5)


# --- objectives -------------------------------------------------------------------------


def test_objectives_registered():
    for name, cls in CLASSES.items():
        assert OBJECTIVES[name] is cls


def test_isolated_embedding_ignores_other_modality():
    model = make_model()
    model.eval()
    batch = make_batch()
    changed = dict(batch, signal_geophone=batch["signal_geophone"] + 3.0 * batch["present_geophone"][:, :, None, None, None])
    with torch.no_grad():
        iso_a = isolated_modality_embeddings(model, model.prepare(batch, augment=False))
        iso_b = isolated_modality_embeddings(model, model.prepare(changed, augment=False))
        fused_a = pooled_modality_embeddings(model, model.prepare(batch, augment=False))
        fused_b = pooled_modality_embeddings(model, model.prepare(changed, augment=False))
    assert torch.allclose(iso_a["microphone"], iso_b["microphone"], atol=1e-6)
    assert not torch.allclose(iso_a["geophone"], iso_b["geophone"])
    # the joint encoder does mix modalities, so the isolation above is what keeps them apart
    assert not torch.allclose(fused_a["microphone"], fused_b["microphone"])


@pytest.mark.parametrize("name", ["simclr", "cmc", "cosmo", "focal"])
def test_objective_loss_decreases(name):
    model = make_model()
    objective = CLASSES[name](model, SMALL_HEADS)
    model.train()
    objective.train()
    optimizer = torch.optim.Adam(list(model.parameters()) + list(objective.parameters()), lr=2e-3)
    batch = make_batch()
    losses = []
    for _ in range(15):
        out = objective(model, batch, 0.0, generator=torch.Generator().manual_seed(3))
        assert all(torch.isfinite(v) for v in out.values()), out
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(float(out["loss"].detach()))
    assert sum(losses[-3:]) < 0.9 * sum(losses[:3]), losses


def test_focal_terms_and_temporal_skip(caplog):
    model = make_model()
    objective = FOCAL(model, SMALL_HEADS)
    batch = make_batch()
    out = objective(model, batch, 0.0, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"shared", "private", "orthogonality", "temporal", "loss"}
    assert float(out["temporal"].detach()) > 0  # group 0 has windows at several time gaps
    s = objective.settings
    total = (s["shared_weight"] * out["shared"] + s["private_weight"] * out["private"]
             + s["orthogonality_weight"] * out["orthogonality"] + s["temporal_weight"] * out["temporal"])
    assert torch.allclose(out["loss"], total)

    no_time = {k: v for k, v in batch.items() if k not in ("time_s", "group_index")}
    with caplog.at_level(logging.DEBUG, logger="spar.models.objectives.contrastive"):
        out = objective(model, no_time, 0.0, generator=torch.Generator().manual_seed(0))
    assert float(out["temporal"].detach()) == 0.0
    assert "temporal term skipped" in caplog.text
    out["loss"].backward()  # the zero term keeps the graph usable


def test_cmc_pair_losses_three_modalities():
    shape = DataShape(
        modalities={m: ModalityShape(3, 1, 20, 1, 5) for m in ("accelerometer", "gyroscope", "magnetometer")},
        n_nodes=2, n_global_nodes=2, n_axes=3,
    )
    model = make_model(shape)
    batch = make_batch(shape, batch=5)
    out = CMC(model, SMALL_HEADS)(model, batch, 0.0, generator=torch.Generator().manual_seed(0))
    pairs = ["cmc_accelerometer_gyroscope", "cmc_accelerometer_magnetometer", "cmc_gyroscope_magnetometer"]
    assert sorted(k for k in out if k != "loss") == pairs
    assert torch.allclose(out["loss"], sum(out[k] for k in pairs) / 3)


@pytest.mark.parametrize("name", ["cmc", "cosmo", "focal"])
def test_cross_modal_objective_rejects_one_modality(name):
    with pytest.raises(ValueError, match="at least two modalities"):
        CLASSES[name](make_model(ONE_MODALITY), SMALL_HEADS)


def test_simclr_runs_on_one_modality():
    model = make_model(ONE_MODALITY)
    out = SimCLR(model, SMALL_HEADS)(model, make_batch(ONE_MODALITY), 0.0, generator=torch.Generator().manual_seed(0))
    loss = float(out["loss"].detach())
    assert math.isfinite(loss)
    assert loss > 0


def test_objective_settings_defaults_and_unknown():
    model = make_model()
    focal = FOCAL(model, {"temporal_weight": 2.0, "augment": {"node_dropout": 0.1}})
    assert focal.settings["temporal_weight"] == 2.0
    assert focal.settings["orthogonality_weight"] == 3.0
    assert focal.settings["augment"]["node_dropout"] == 0.1
    assert focal.settings["augment"]["gain_std"] == 0.2
    assert focal.hidden_dim == MODEL_PARAMS["dim"]  # hidden_dim None means the model width
    with pytest.raises(ValueError, match="unknown setting"):
        SimCLR(model, {"temprature": 0.1})
    with pytest.raises(ValueError, match="weight >= 0"):
        Cosmo(model, {"fusion_weight": -1.0})


def test_encode_shape_same_for_all_objectives():
    batch = make_batch()
    shapes = set()
    for name, cls in CLASSES.items():
        model = make_model()
        objective = cls(model, SMALL_HEADS)
        objective(model, batch, 0.0, generator=torch.Generator().manual_seed(0))["loss"].backward()
        model.eval()
        tokens, valid = model.encode(batch)
        shapes.add((tuple(tokens.shape), tuple(valid.shape)))
    n_tokens = 4 * 4 + 4 * 4  # 4 node slots x 4 patches in each of two modalities
    assert shapes == {((6, n_tokens, MODEL_PARAMS["dim"]), (6, n_tokens))}
