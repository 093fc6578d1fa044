"""Unit tests of the masked-reconstruction baselines: AudioMAE, CAV-MAE, FreqMAE and PhyMask."""

import logging
import math

import pytest
import torch

from spar.models.masking import energy_coherence_mask, energy_coherence_scores, gumbel_top_k_mask, random_mask
from spar.models.objectives.base import OBJECTIVES
from spar.models.objectives.reconstruction import (
    CAVMAE,
    AudioMAE,
    FreqMAE,
    PhyMask,
    band_index,
    band_weights,
    normalized_targets,
    sample_weights,
    symmetric_info_nce,
    unimodal_pooled_embeddings,
    weighted_masked_mse,
)
from spar.models.spar import ModelConfig, SparModel, masked_mse
from spar.models.tokens import DataShape, ModalityShape, patchify

# a small backbone with the plain-MAE switches the baselines use
MODEL_PARAMS = {
    "dim": 32, "heads": 4, "mlp_ratio": 2.0, "modality_layers": 1, "joint_layers": 1, "decoder_dim": 16,
    "decoder_layers": 1, "structural_dim": 4, "dropout": 0.0, "masking": "random",
    "spatial_embedding": False, "structural_embedding": False, "spatial_reconstruction": False,
    "geometric_augmentation": False, "node_slot_embedding": True,
}
SHAPE = DataShape(
    modalities={"microphone": ModalityShape(1, 8, 10, 4, 5), "geophone": ModalityShape(2, 4, 10, 2, 5)},
    n_nodes=4, n_global_nodes=6, n_axes=2,
)
ONE_MODALITY = DataShape(modalities={"geophone": ModalityShape(2, 4, 10, 2, 5)}, n_nodes=4, n_global_nodes=6, n_axes=2)
OBJECTIVE_CLASSES = {"audiomae": AudioMAE, "cav_mae": CAVMAE, "freqmae": FreqMAE, "phymask": PhyMask}


def make_model(shape=SHAPE, seed=0):
    torch.manual_seed(seed)
    return SparModel(ModelConfig.from_dict(MODEL_PARAMS), shape)


def make_batch(shape=SHAPE, seed=0, batch=4):
    g = torch.Generator().manual_seed(seed)
    node_id = torch.tensor([[0, 1, 2, -1], [3, 4, 5, 0], [0, 1, 2, -1], [5, 4, 3, 2]])[:batch]
    out = {"node_id": node_id, "position": torch.randn(batch, 4, 2, generator=g) * 30.0}
    for m, ms in shape.modalities.items():
        out[f"signal_{m}"] = torch.randn(batch, 4, ms.channels, ms.freq, ms.frames, generator=g)
        present = node_id >= 0
        present[0, 1] = False  # node 1 of sample 0 has no data
        out[f"present_{m}"] = present
    return out


def losses_of(objective, model, batch, seed=7, mask_ratio=0.5):
    return objective(model, batch, mask_ratio, generator=torch.Generator().manual_seed(seed))


def test_baselines_registered():
    for name, cls in OBJECTIVE_CLASSES.items():
        assert OBJECTIVES[name] is cls


@pytest.mark.parametrize("name", sorted(OBJECTIVE_CLASSES))
def test_objective_loss_decreases(name):
    model = make_model()
    objective = OBJECTIVE_CLASSES[name](model, {})
    batch = make_batch()
    parameters = list(model.parameters()) + list(objective.parameters())
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    history = []
    for _ in range(15):
        losses = losses_of(objective, model, batch)
        assert torch.isfinite(losses["loss"])
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        history.append(float(losses["loss"].detach()))
    with torch.no_grad():
        final = float(losses_of(objective, model, batch)["loss"])
    assert final < 0.8 * history[0], f"{name}: loss went from {history[0]:.4f} to {final:.4f}"


def test_cav_mae_contrastive_term_decreases():
    model = make_model()
    objective = CAVMAE(model, {"contrastive_weight": 1.0})
    batch = make_batch()
    optimizer = torch.optim.Adam(list(model.parameters()) + list(objective.parameters()), lr=3e-3)
    first = None
    for _ in range(15):
        losses = losses_of(objective, model, batch)
        first = float(losses["contrastive"].detach()) if first is None else first
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        final = float(losses_of(objective, model, batch)["contrastive"])
    assert final < 0.8 * first, f"contrastive term went from {first:.4f} to {final:.4f}"


def test_unknown_setting_rejected():
    model = make_model()
    with pytest.raises(ValueError, match="contrastive_weight"):
        CAVMAE(model, {"contrast_weight": 0.1})


def test_audiomae_matches_backbone_forward():
    model = make_model()
    batch = make_batch()
    expected = model(batch, 0.5, generator=torch.Generator().manual_seed(7))
    got = losses_of(AudioMAE(model, {}), model, batch)
    assert torch.equal(got["loss"], expected["loss"])
    assert set(got) == {"loss", "signal_geophone", "signal_microphone"}


def test_audiomae_normalized_targets_change_loss():
    model = make_model()
    batch = make_batch()
    plain = losses_of(AudioMAE(model, {}), model, batch)["loss"]
    normalized = losses_of(AudioMAE(model, {"normalize_targets": True}), model, batch)["loss"]
    assert torch.isfinite(normalized)
    assert not torch.isclose(plain, normalized)


def test_normalized_targets_by_hand():
    x = torch.tensor([[[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]])
    out = normalized_targets(x)
    # unbiased variance of (1, 2, 3) is 1
    assert torch.allclose(out[0, 0], torch.tensor([-1.0, 0.0, 1.0]) / math.sqrt(1 + 1e-6))
    assert torch.equal(out[0, 1], torch.zeros(3))  # a constant patch becomes zeros, not NaN


def test_cav_mae_zero_weight_equals_audiomae():
    model = make_model()
    batch = make_batch()
    mae = losses_of(AudioMAE(model, {}), model, batch)
    cav = losses_of(CAVMAE(model, {"contrastive_weight": 0.0}), model, batch)
    assert torch.equal(cav["loss"], mae["loss"])
    assert float(cav["contrastive"]) == 0.0


def test_cav_mae_adds_weighted_contrastive_term():
    model = make_model()
    batch = make_batch()
    mae = losses_of(AudioMAE(model, {}), model, batch)
    cav = losses_of(CAVMAE(model, {"contrastive_weight": 0.5}), model, batch)
    assert float(cav["contrastive"].detach()) > 0.0
    assert torch.allclose(cav["loss"], mae["loss"] + 0.5 * cav["contrastive"])


def test_cav_mae_one_modality_contrastive_zero(caplog):
    model = make_model(ONE_MODALITY)
    with caplog.at_level(logging.WARNING, logger="spar.models.objectives.reconstruction"):
        objective = CAVMAE(model, {"contrastive_weight": 1.0})
    warnings = [r for r in caplog.records if "one modality" in r.getMessage()]
    assert len(warnings) == 1

    batch = make_batch(ONE_MODALITY)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spar.models.objectives.reconstruction"):
        first = losses_of(objective, model, batch)
        losses_of(objective, model, batch)
    assert float(first["contrastive"]) == 0.0
    assert torch.equal(first["loss"], first["signal_geophone"])
    assert not caplog.records  # the warning is not repeated per step


def test_symmetric_info_nce_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # logits are the identity at temperature 1: each cross entropy is log(1 + e^-1)
    assert math.isclose(float(symmetric_info_nce(a, a, 1.0)), math.log(1 + math.exp(-1)), rel_tol=1e-6)
    # embeddings are normalised first, so scaling a row changes nothing
    assert math.isclose(float(symmetric_info_nce(a * 3.0, a, 1.0)), math.log(1 + math.exp(-1)), rel_tol=1e-6)
    assert float(symmetric_info_nce(a[:1], a[:1], 1.0)) == 0.0  # one sample has no negative


def test_symmetric_info_nce_is_symmetric():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert torch.isclose(symmetric_info_nce(a, b, 0.1), symmetric_info_nce(b, a, 0.1))


def test_unimodal_embeddings_ignore_other_modality():
    model = make_model().eval()
    batch = make_batch()
    changed = dict(batch, signal_geophone=batch["signal_geophone"] * 5.0 + 1.0)
    with torch.no_grad():
        tokens, tokens_changed = model.prepare(batch, augment=False), model.prepare(changed, augment=False)
        keep = {m: random_mask(4, 4 * SHAPE.modalities[m].tokens_per_node, 0.5, torch.Generator().manual_seed(1))[0]
                for m in model.modalities}
        pooled = unimodal_pooled_embeddings(model, tokens, keep)
        pooled_changed = unimodal_pooled_embeddings(model, tokens_changed, keep)
    assert torch.allclose(pooled["microphone"], pooled_changed["microphone"], atol=1e-5)
    assert not torch.allclose(pooled["geophone"], pooled_changed["geophone"], atol=1e-3)


def test_band_index_matches_patchify():
    ms = ModalityShape(1, 8, 10, 4, 5)  # 2 bands x 2 time patches
    rows = torch.arange(8, dtype=torch.float32).view(1, 1, 1, 8, 1).expand(1, 3, 1, 8, 10)
    tokens = patchify(rows, ms)  # each feature is its frequency row
    bands = band_index(ms, 3)
    assert bands.tolist() == [0, 0, 1, 1] * 3
    assert torch.equal((tokens[0].min(dim=-1).values // 4).long(), bands)


def test_band_weights_two_bands():
    # band 0 has mean log power 0, band 1 has log 3: power shares 1/4 and 3/4
    energy = torch.tensor([[0.0, 0.0, math.log(3.0), math.log(3.0), 50.0]])
    present = torch.tensor([[True, True, True, True, False]])  # the absent token is ignored
    bands = torch.tensor([0, 0, 1, 1, 1])
    weights = band_weights(energy, present, bands, 2, sharpness=1.0)
    assert torch.allclose(weights, torch.tensor([0.5, 1.5]))
    assert torch.allclose(band_weights(energy, present, bands, 2, sharpness=0.0), torch.ones(2))


def test_sample_weights_by_hand():
    # log powers 0, log 2, log 1/4 and log 16; the fifth sample has no data
    energy = torch.tensor([0.0, math.log(2.0), math.log(0.25), math.log(16.0), 99.0])
    valid = torch.tensor([True, True, True, True, False])
    weights = sample_weights(energy, valid, sharpness=1.0, min_weight=0.5, max_weight=2.0)
    # the median of the valid ones is log(sqrt 2); 1/4 and 16 fall outside the clip range
    raw = torch.tensor([1 / math.sqrt(2), math.sqrt(2), 0.5, 2.0])
    assert torch.allclose(weights[:4], raw * 4 / raw.sum())
    assert weights[4] == 0.0
    assert math.isclose(float(weights[:4].mean()), 1.0, rel_tol=1e-6)


def test_weighted_masked_mse_by_hand():
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])  # squared errors 1, 4, 9
    hidden = torch.tensor([[True, True, False]])
    weight = torch.tensor([[0.5, 1.5, 7.0]])
    # (0.5 * 1 + 1.5 * 4) / 2 hidden tokens
    assert math.isclose(float(weighted_masked_mse(pred, target, hidden, weight)), 3.25)
    ones = torch.ones(1, 3)
    assert torch.isclose(weighted_masked_mse(pred, target, hidden, ones), masked_mse(pred, target, hidden))


def test_freqmae_token_weights_favour_loud_band():
    shape = DataShape(modalities={"geophone": ModalityShape(1, 4, 10, 2, 5)}, n_nodes=2, n_global_nodes=2, n_axes=2)
    model = make_model(shape)
    objective = FreqMAE(model, {"band_sharpness": 1.0, "sample_sharpness": 0.0})
    # band 0 (rows 0-1) at log power 0, band 1 (rows 2-3) at log 3, in both samples
    signal = torch.zeros(2, 2, 1, 4, 10)
    signal[:, :, :, 2:] = math.log(3.0)
    x = patchify(signal, shape.modalities["geophone"])
    present = torch.ones(2, x.shape[1], dtype=torch.bool)
    weights = objective.token_weights(model, "geophone", x, present)
    expected = torch.tensor([0.5, 0.5, 1.5, 1.5] * 2).expand(2, -1)
    assert torch.allclose(weights, expected)


def test_energy_coherence_scores_by_hand():
    # two nodes, two patches each: patch 0 is the same on both nodes, patch 1 is opposite
    pattern = torch.tensor([1.0, -1.0, 2.0, 0.0])
    x = torch.stack([pattern, pattern, pattern, -pattern]).view(1, 4, 4)
    present = torch.ones(1, 4, dtype=torch.bool)
    scores = energy_coherence_scores(x, present, n_nodes=2, energy_weight=0.0, coherence_weight=1.0)
    # coherences (1, -1, 1, -1) standardise to themselves
    assert torch.allclose(scores, torch.tensor([[1.0, -1.0, 1.0, -1.0]]), atol=1e-6)

    # energy term alone: token means (0.5, 0.5, 0.5, -0.5) standardise to (1, 1, 1, -3) / sqrt(3)
    scores = energy_coherence_scores(x, present, n_nodes=2, energy_weight=1.0, coherence_weight=0.0)
    expected = torch.tensor([[1.0, 1.0, 1.0, -3.0]]) / math.sqrt(3.0)
    assert torch.allclose(scores, expected, atol=1e-6)


def test_energy_coherence_scores_single_node_has_no_coherence():
    x = torch.randn(1, 6, 4, generator=torch.Generator().manual_seed(0))
    present = torch.tensor([[True, True, True, False, False, False]])  # only node 0 of 2 has data
    scores = energy_coherence_scores(x, present, n_nodes=2, energy_weight=0.0, coherence_weight=1.0)
    assert torch.equal(scores, torch.zeros(1, 6))


@pytest.mark.parametrize("ratio, expected_hidden", [(0.5, 32), (0.75, 48), (0.9, 58)])
def test_phymask_hides_exact_count(ratio, expected_hidden):
    x = torch.randn(5, 64, 6, generator=torch.Generator().manual_seed(2))
    present = torch.ones(5, 64, dtype=torch.bool)
    keep, mask = energy_coherence_mask(x, present, 4, ratio, generator=torch.Generator().manual_seed(3))
    assert mask.sum(dim=1).tolist() == [expected_hidden] * 5
    assert keep.shape == (5, 64 - expected_hidden)
    assert torch.equal(torch.sort(keep, dim=1).values, keep)
    assert not mask.gather(1, keep).any()


def test_phymask_prefers_high_energy_patches():
    # in every sample, the even tokens have mean log power 2 and the odd tokens 0
    g = torch.Generator().manual_seed(4)
    x = torch.randn(8, 40, 6, generator=g) * 0.1
    loud = torch.arange(40) % 2 == 0
    x[:, loud] += 2.0
    present = torch.ones(8, 40, dtype=torch.bool)
    ratio, draws = 0.5, 200
    hidden_loud = hidden_quiet = 0.0
    for _ in range(draws):
        _, mask = energy_coherence_mask(x, present, 4, ratio, energy_weight=1.0, coherence_weight=0.0, generator=g)
        hidden_loud += mask[:, loud].float().mean().item() / draws
        hidden_quiet += mask[:, ~loud].float().mean().item() / draws
    # a uniform mask hides every token at rate 0.5; scores +-1 make loud tokens e^2 times as likely
    assert hidden_loud > ratio + 0.15
    assert hidden_quiet < ratio - 0.15


def test_gumbel_top_k_hides_absent_tokens_first():
    scores = torch.tensor([[5.0, 5.0, -5.0, -5.0, 0.0, 0.0]])
    present = torch.tensor([[True, True, True, True, False, False]])
    _, mask = gumbel_top_k_mask(scores, 0.5, 0.01, torch.Generator().manual_seed(0), present)
    # the two absent tokens, then the highest-scored present token at a low temperature
    assert mask[0].tolist().count(True) == 3
    assert mask[0, 4]
    assert mask[0, 5]
    assert not mask[0, 2]
    assert not mask[0, 3]


def test_phymask_objective_uses_its_mask():
    model = make_model()
    batch = make_batch()
    objective = PhyMask(model, {"energy_weight": 1.0, "coherence_weight": 0.0, "temperature": 0.01})
    losses = losses_of(objective, model, batch)
    assert torch.isfinite(losses["loss"])
    assert set(losses) == {"loss", "signal_geophone", "signal_microphone"}
    # a different mask than the random one with the same generator state
    assert not torch.equal(losses["loss"], losses_of(AudioMAE(model, {}), model, batch)["loss"])
