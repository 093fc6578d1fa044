"""Unit tests of the SPAR model: masking, placement handling, invariances and shapes."""

import math

import pytest
import torch

from spar.models.masking import node_balanced_mask, node_drop_mask, random_mask, visible_count
from spar.models.registry import model_config_for
from spar.models.spar import SparModel, augment_positions, normalize_positions
from spar.models.tokens import DataShape, ModalityShape, patchify, unpatchify

MODEL_PARAMS = {
    "dim": 32, "heads": 4, "mlp_ratio": 2.0, "modality_layers": 1, "joint_layers": 1, "decoder_dim": 16,
    "decoder_layers": 1, "structural_dim": 4, "dropout": 0.0, "geometric_augmentation": True,
    "spatial_reconstruction": True, "spatial_embedding": True, "structural_embedding": True,
    "translation_std": 0.5, "masking": "random", "node_drop_ratio": 0.25,
}
SHAPE = DataShape(
    modalities={"microphone": ModalityShape(1, 8, 10, 4, 5), "geophone": ModalityShape(2, 4, 10, 2, 5)},
    n_nodes=4, n_global_nodes=6, n_axes=2,
)


def make_batch(seed=0, batch=3):
    g = torch.Generator().manual_seed(seed)
    node_id = torch.tensor([[0, 1, 2, -1], [3, 4, 5, 0], [0, 1, 2, -1]])[:batch]
    out = {
        "node_id": node_id,
        "position": torch.randn(batch, 4, 2, generator=g) * 30.0,
    }
    for m, ms in SHAPE.modalities.items():
        out[f"signal_{m}"] = torch.randn(batch, 4, ms.channels, ms.freq, ms.frames, generator=g)
        present = node_id >= 0
        present[0, 1] = False  # node 1 of sample 0 has no data
        out[f"present_{m}"] = present
    return out


def test_visible_count_exact():
    assert visible_count(100, 0.75) == 25
    assert visible_count(10, 0.5) == 5
    assert visible_count(3, 0.9) == 1  # at least one token stays visible


@pytest.mark.parametrize("ratio, expected_masked", [(0.75, 60), (0.5, 40), (0.85, 68)])
def test_random_mask_hides_exact_count(ratio, expected_masked):
    keep, mask = random_mask(5, 80, ratio, torch.Generator().manual_seed(1))
    assert keep.shape == (5, 80 - expected_masked)
    assert mask.sum(dim=1).tolist() == [expected_masked] * 5
    # keep indices are exactly the unmasked positions, in ascending order
    assert torch.equal(torch.sort(keep, dim=1).values, keep)
    assert not mask.gather(1, keep).any()


def test_node_drop_mask_hides_whole_nodes_first():
    keep, mask = node_drop_mask(4, n_nodes=8, tokens_per_node=10, mask_ratio=0.75, node_drop_ratio=0.25,
                                generator=torch.Generator().manual_seed(2))
    per_node = mask.view(4, 8, 10).sum(dim=2)
    assert mask.sum(dim=1).tolist() == [60] * 4
    assert ((per_node == 10).sum(dim=1) >= 2).all()  # two of eight nodes fully hidden


def test_node_balanced_mask_keeps_share_per_node():
    keep, mask = node_balanced_mask(4, n_nodes=8, tokens_per_node=10, mask_ratio=0.75,
                                    generator=torch.Generator().manual_seed(3))
    visible_per_node = (~mask).view(4, 8, 10).sum(dim=2)
    assert mask.sum(dim=1).tolist() == [60] * 4
    assert (visible_per_node >= 20 // 8).all()


def test_node_balanced_mask_shares_among_present_nodes():
    # 8 slots x 10 tokens, 20 visible; sample 0 has 4 present nodes, so each keeps >= 5
    present = torch.ones(2, 8, dtype=torch.bool)
    present[0, 4:] = False
    keep, mask = node_balanced_mask(2, n_nodes=8, tokens_per_node=10, mask_ratio=0.75,
                                    generator=torch.Generator().manual_seed(4), node_present=present)
    visible_per_node = (~mask).view(2, 8, 10).sum(dim=2)
    assert mask.sum(dim=1).tolist() == [60, 60]
    assert visible_per_node[0, :4].tolist() == [5, 5, 5, 5]
    assert visible_per_node[0, 4:].sum().item() == 0  # absent nodes have nothing to show
    assert (visible_per_node[1] >= 2).all()


def test_node_drop_mask_drops_only_present_nodes():
    # 6 present of 8 slots, drop ratio 0.5: three present nodes fully hidden in every sample
    present = torch.ones(16, 8, dtype=torch.bool)
    present[:, [1, 6]] = False
    keep, mask = node_drop_mask(16, n_nodes=8, tokens_per_node=10, mask_ratio=0.75, node_drop_ratio=0.5,
                                generator=torch.Generator().manual_seed(5), node_present=present)
    hidden_nodes = mask.view(16, 8, 10).all(dim=2)
    assert (hidden_nodes & present).sum(dim=1).tolist() == [3] * 16
    assert mask.sum(dim=1).tolist() == [60] * 16


def test_node_drop_mask_keeps_one_present_node():
    present = torch.zeros(1, 4, dtype=torch.bool)
    present[0, 2] = True
    keep, mask = node_drop_mask(1, n_nodes=4, tokens_per_node=5, mask_ratio=0.5, node_drop_ratio=1.0,
                                generator=torch.Generator().manual_seed(6), node_present=present)
    assert not mask.view(1, 4, 5)[0, 2].all()


def test_patchify_roundtrip_and_order():
    ms = ModalityShape(2, 4, 10, 2, 5)
    x = torch.arange(3 * 4 * 2 * 4 * 10, dtype=torch.float32).view(3, 4, 2, 4, 10)
    tokens = patchify(x, ms)
    assert tokens.shape == (3, 4 * 4, 2 * 2 * 5)
    assert torch.equal(unpatchify(tokens, ms, 4), x)
    # token 4 is the first patch of node 1
    assert torch.equal(tokens[0, 4], x[0, 1, :, 0:2, 0:5].reshape(-1))


def test_normalize_positions_zero_mean_unit_variance():
    position = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [999.0, 999.0]]])
    valid = torch.tensor([[True, True, True, False]])
    out = normalize_positions(position, valid)
    assert torch.allclose(out[0, :3].mean(dim=0), torch.zeros(2), atol=1e-6)
    assert math.isclose(float((out[0, :3] ** 2).mean()), 1.0, rel_tol=1e-5)
    assert torch.equal(out[0, 3], torch.zeros(2))  # empty slot stays at zero
    # the triangle keeps its shape: the two legs stay equally long
    leg1 = torch.dist(out[0, 0], out[0, 1])
    leg2 = torch.dist(out[0, 0], out[0, 2])
    assert torch.isclose(leg1, leg2)


def test_augmentation_preserves_pairwise_distances():
    g = torch.Generator().manual_seed(4)
    position = torch.randn(6, 5, 3, generator=g)
    valid = torch.ones(6, 5, dtype=torch.bool)
    out = augment_positions(position, valid, translation_std=2.0, generator=g)
    assert torch.allclose(torch.cdist(out, out), torch.cdist(position, position), atol=1e-5)
    # the up axis is translated but not rotated: differences along it are unchanged
    assert torch.allclose(out[..., 2] - out[:, :1, 2], position[..., 2] - position[:, :1, 2], atol=1e-5)
    assert not torch.allclose(out, position)


def test_augmentation_known_rotation():
    # a quarter turn maps east to north; with zero translation the result is exact
    position = torch.tensor([[[1.0, 0.0]]])
    g = torch.Generator().manual_seed(0)
    angle = torch.rand(1, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    out = augment_positions(position, torch.ones(1, 1, dtype=torch.bool), translation_std=0.0, generator=g)
    assert torch.allclose(out[0, 0], torch.tensor([torch.cos(angle).item(), torch.sin(angle).item()]), atol=1e-6)


@pytest.mark.parametrize("method", ["spar", "mae"])
def test_model_output_shapes(method):
    torch.manual_seed(0)
    model = SparModel(model_config_for(method, MODEL_PARAMS), SHAPE)
    batch = make_batch()
    losses = model(batch, mask_ratio=0.75, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(losses["loss"])
    assert ("spatial_microphone" in losses) == (method == "spar")
    model.eval()
    tokens, valid = model.encode(batch)
    n_tokens = 4 * (2 * 2) + 4 * (2 * 2)  # 4 node slots x 4 patches, two modalities
    assert tokens.shape == (3, n_tokens, 32)
    assert valid.shape == (3, n_tokens)
    # sample 0: slot 3 is empty and node 1 has no data -> 2 of 4 nodes valid in each modality
    assert int(valid[0].sum()) == 2 * 4 * 2


def test_missing_token_values_do_not_change_loss():
    torch.manual_seed(0)
    model = SparModel(model_config_for("spar", MODEL_PARAMS), SHAPE)
    model.train()
    batch = make_batch()
    changed = {k: v.clone() for k, v in batch.items()}
    for m in SHAPE.modalities:
        absent = ~changed[f"present_{m}"]
        changed[f"signal_{m}"][absent] = 1e3 * torch.randn_like(changed[f"signal_{m}"][absent])
    loss_a = model(batch, 0.75, generator=torch.Generator().manual_seed(5))["loss"]
    loss_b = model(changed, 0.75, generator=torch.Generator().manual_seed(5))["loss"]
    assert torch.equal(loss_a, loss_b)
    # a change to a present token's values does change the loss, so the check above can fail
    changed["signal_geophone"][0, 0] += 5.0
    loss_c = model(changed, 0.75, generator=torch.Generator().manual_seed(5))["loss"]
    assert not torch.equal(loss_a, loss_c)


def test_ablation_switches_remove_modules():
    params = dict(MODEL_PARAMS, spatial_embedding=False, structural_embedding=False, spatial_reconstruction=False)
    model = SparModel(model_config_for("spar", params), SHAPE)
    names = [n for n, _ in model.named_parameters()]
    assert not any("sp_embed" in n or "structural_position" in n or "spatial_decoder" in n for n in names)


def test_unknown_model_parameter_rejected():
    with pytest.raises(ValueError, match="unknown model parameter"):
        model_config_for("spar", dict(MODEL_PARAMS, widht=3))
    with pytest.raises(ValueError, match="unknown method"):
        model_config_for("simclr2", MODEL_PARAMS)


def test_pretraining_steps_reduce_loss():
    torch.manual_seed(0)
    model = SparModel(model_config_for("spar", MODEL_PARAMS), SHAPE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = make_batch()
    losses = []
    for step in range(30):
        loss = model(batch, 0.5, generator=torch.Generator().manual_seed(step % 3))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3])
