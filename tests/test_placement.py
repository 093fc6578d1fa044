"""Tests of pretraining without some groups and of structural positions for unseen nodes, on a tiny store."""

import json

import numpy as np
import pytest
import torch

import spar.train.placement as placement_module
import spar.train.pretrain as pretrain_module
from spar import cli
from spar.data.windows import WindowData
from spar.features.store import build_dataset, write_store
from spar.train import checkpoint
from spar.train.placement import (
    assign_random_structural_positions,
    fit_structural_positions,
    learned_nodes,
    nodes_seen_in_any_modality,
    place,
    pretraining_loss,
    structural_tables,
)
from spar.train.pretrain import pretrain, training_windows

# Scenes s1 (nodes 0-2), s2 (nodes 3-5) and s3 (nodes 6-8), three node slots each.
# Node 5 has geophone data but never microphone data.
GROUP_NODES = {"s1": [0, 1, 2], "s2": [3, 4, 5], "s3": [6, 7, 8]}
LAYOUT = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
TRAIN_WINDOWS, TEST_WINDOWS = 8, 2
SHAPES = {"microphone": (1, 8, 10), "geophone": (1, 4, 10)}
FIT_SETTINGS = {"epochs": 12, "batch_size": 4, "lr": 0.05}


def tiny_tree(tmp_path, epochs=3) -> dict:
    return {
        "mask_ratio": 0.5,
        "model": {"dim": 16, "heads": 2, "mlp_ratio": 2.0, "modality_layers": 1, "joint_layers": 1,
                  "decoder_dim": 8, "decoder_layers": 1, "structural_dim": 4},
        "datasets": {"tiny": {"patch": {"microphone": [4, 5], "geophone": [2, 5]}}},
        "pretrain": {"epochs": epochs, "batch_size": 4, "lr": 3e-3, "weight_decay": 0.05, "betas": [0.9, 0.95],
                     "warmup_epochs": 0, "threads": 1, "checkpoint_every": 100},
        "placement": {"fit": FIT_SETTINGS},
        "gpu": {"lock_dir": str(tmp_path / "gpu-locks")},
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Store of three scenes whose node signals follow a fixed pattern per node plus noise."""
    rng = np.random.default_rng(0)
    pattern = {m: rng.normal(size=(9, *shape)) for m, shape in SHAPES.items()}
    node_id, position, group, split = [], [], [], []
    signals = {m: [] for m in SHAPES}
    present = {m: [] for m in SHAPES}
    for offset, (scene, nodes) in enumerate(GROUP_NODES.items()):
        for w in range(TRAIN_WINDOWS + TEST_WINDOWS):
            node_id.append(nodes)
            position.append(LAYOUT * (1 + offset) + rng.normal(scale=0.1, size=LAYOUT.shape))
            group.append(scene)
            split.append("train" if w < TRAIN_WINDOWS else "test")
            for m in SHAPES:
                signals[m].append(pattern[m][nodes] + 0.3 * rng.normal(size=(3, *SHAPES[m])))
                present[m].append([not (m == "microphone" and n == 5) for n in nodes])
    n_sample = len(node_id)
    ds = build_dataset(
        signals={m: np.array(v) for m, v in signals.items()},
        present={m: np.array(v) for m, v in present.items()},
        position=np.array(position),
        node_id=np.array(node_id),
        node_name=[f"{scene}/rs{n}" for scene, nodes in GROUP_NODES.items() for n in nodes],
        time=np.datetime64("2023-06-12T15:00:00", "ns") + np.arange(n_sample) * np.timedelta64(2, "s"),
        group=group,
        split=split,
        axis_names=["east", "north"],
        attrs={"position_unit": "m", "raw_hash": "tiny"},
    )
    path = tmp_path_factory.mktemp("store") / "tiny.zarr"
    write_store(ds, path)
    return path


@pytest.fixture(scope="module")
def pretrained(store, tmp_path_factory):
    """Paths of the initial weights (0 epochs) and of 3 epochs of SPAR pretraining without s3, same seed."""
    root = tmp_path_factory.mktemp("pretrain")
    initial, trained = root / "initial" / "model.pt", root / "trained" / "model.pt"
    pretrain(store, initial, "spar", 0, tiny_tree(root, epochs=0), "tiny")
    pretrain(store, trained, "spar", 0, tiny_tree(root), "tiny", exclude_groups=["s3"])
    return initial, trained


def test_training_windows_without_group(store):
    data = training_windows(store, ["s3"])
    assert len(data) == 2 * TRAIN_WINDOWS
    assert sorted(set(data.group.tolist())) == ["s1", "s2"]
    assert (data.split == "train").all()


def test_learned_nodes_need_every_modality(store):
    data = training_windows(store, ["s3"])
    assert learned_nodes(data).tolist() == [0, 1, 2, 3, 4]
    assert nodes_seen_in_any_modality(data).tolist() == [0, 1, 2, 3, 4, 5]


def test_exclude_unknown_group_rejected(store, tmp_path):
    with pytest.raises(ValueError, match=r"cannot exclude groups \['zz'\].*\['s1', 's2', 's3'\]"):
        pretrain(store, tmp_path / "model.pt", "spar", 0, tiny_tree(tmp_path), "tiny", exclude_groups=["zz"])


def test_exclude_every_group_rejected(store):
    with pytest.raises(ValueError, match="leaves no training windows"):
        training_windows(store, ["s1", "s2", "s3"])


def test_pretrain_keeps_excluded_rows(pretrained):
    initial, trained = (torch.load(p, weights_only=False) for p in pretrained)
    assert trained["exclude_groups"] == ["s3"]
    assert initial["exclude_groups"] == []
    for m in SHAPES:
        key = f"embed.{m}.structural_position.weight"
        before, after = initial["state_dict"][key], trained["state_dict"][key]
        for node in (6, 7, 8):
            assert torch.equal(after[node], before[node]), f"{m} row {node} of the excluded scene changed"
        for node in (0, 1, 2, 3, 4):
            assert not torch.equal(after[node], before[node]), f"{m} row {node} did not train"
    # node 5 had geophone data only, so only its geophone row trained
    assert not torch.equal(trained["state_dict"]["embed.geophone.structural_position.weight"][5],
                           initial["state_dict"]["embed.geophone.structural_position.weight"][5])
    assert torch.equal(trained["state_dict"]["embed.microphone.structural_position.weight"][5],
                       initial["state_dict"]["embed.microphone.structural_position.weight"][5])


def test_pretrain_run_hash_includes_exclusion(store, tmp_path, monkeypatch):
    # the hash decides whether resume.pt may be resumed, so a run without s3 must not match a run on every group
    hashes = []
    save = pretrain_module.checkpoint.save

    def record_hash(path, payload):
        if "run_hash" in payload:
            hashes.append(payload["run_hash"])
        save(path, payload)

    monkeypatch.setattr(pretrain_module.checkpoint, "save", record_hash)
    tree = tiny_tree(tmp_path, epochs=2)
    tree["pretrain"]["checkpoint_every"] = 1
    for exclude in ([], ["s3"], ["s3"]):
        pretrain(store, tmp_path / "model.pt", "spar", 0, tree, "tiny", exclude_groups=exclude)
    assert len(hashes) == 3  # one resume checkpoint per run, after its first epoch
    assert hashes[0] != hashes[1]
    assert hashes[1] == hashes[2]


def test_random_assignment_copies_learned_rows(pretrained):
    model, _ = checkpoint.load_model(pretrained[1])
    original = {m: t.weight.detach().clone() for m, t in structural_tables(model).items()}
    source = assign_random_structural_positions(model, [6, 7, 8], [0, 1, 2, 3, 4], torch.Generator().manual_seed(3))

    assert sorted(source) == [6, 7, 8]
    assert set(source.values()) <= {0, 1, 2, 3, 4}
    assert len(set(source.values())) == 3  # five learned nodes for three new ones: no shared source
    for m, table in structural_tables(model).items():
        for new, src in source.items():
            assert torch.equal(table.weight[new], original[m][src]), f"{m}: row {new} is not a copy of row {src}"
        assert torch.equal(table.weight[:6], original[m][:6]), f"{m}: a learned row changed"

    again, _ = checkpoint.load_model(pretrained[1])
    assert assign_random_structural_positions(again, [6, 7, 8], [0, 1, 2, 3, 4], torch.Generator().manual_seed(3)) == source


def test_random_assignment_rejects_overlap(pretrained):
    model, _ = checkpoint.load_model(pretrained[1])
    with pytest.raises(ValueError, match=r"nodes \[4\] are both new and learned"):
        assign_random_structural_positions(model, [4, 6], [0, 1, 2, 3, 4], torch.Generator().manual_seed(0))


def test_fit_changes_only_new_rows(pretrained, store):
    model, ckpt = checkpoint.load_model(pretrained[1])
    generator = torch.Generator().manual_seed(1)
    assign_random_structural_positions(model, [6, 7, 8], [0, 1, 2, 3, 4], generator)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = WindowData.from_store(store, split="train", group="s3")

    eval_before = pretraining_loss(model, data, ckpt["mask_ratio"], 4, "cpu")
    assert pretraining_loss(model, data, ckpt["mask_ratio"], 4, "cpu") == eval_before  # fixed draws: repeatable
    result = fit_structural_positions(model, data, [6, 7, 8], FIT_SETTINGS, ckpt["mask_ratio"], generator, "cpu")
    eval_after = pretraining_loss(model, data, ckpt["mask_ratio"], 4, "cpu")

    after = model.state_dict()
    assert sorted(after) == sorted(before)
    for key in before:
        if key.endswith("structural_position.weight"):
            assert torch.equal(after[key][:6], before[key][:6]), f"{key}: a row of another node changed"
            for node in (6, 7, 8):
                assert not torch.equal(after[key][node], before[key][node]), f"{key}: row {node} was not fitted"
        else:
            assert torch.equal(after[key], before[key]), f"{key} changed"
    assert result["loss_before"] == eval_before
    assert result["loss_after"] == eval_after
    assert eval_after < eval_before
    assert len(result["epochs"]) == 12
    # the model is left as it was found: plain embedding tables, trainable parameters
    assert all(isinstance(t, torch.nn.Embedding) for t in structural_tables(model).values())
    assert all(p.requires_grad for p in model.parameters())


def test_place_random_and_fitted(pretrained, store, tmp_path):
    tree = tiny_tree(tmp_path)
    for mode in ("random", "fitted"):
        place(pretrained[1], store, "s3", mode, tmp_path / mode / "model.pt", 5, tree)
    summary = {mode: json.loads((tmp_path / mode / "model.placement.json").read_text()) for mode in ("random", "fitted")}

    assert [row["node_name"] for row in summary["random"]["assigned"]] == ["s3/rs6", "s3/rs7", "s3/rs8"]
    assert summary["random"]["assigned"] == summary["fitted"]["assigned"]  # fitting starts from the same draw
    assert {row["source_node_id"] for row in summary["random"]["assigned"]} <= {0, 1, 2, 3, 4}
    assert summary["random"]["fit"] is None
    assert summary["fitted"]["fit"]["loss_after"] < summary["fitted"]["fit"]["loss_before"]
    assert summary["fitted"]["fit"]["windows"] == TRAIN_WINDOWS
    assert summary["fitted"]["pretraining_excluded_groups"] == ["s3"]

    random_model, random_ckpt = checkpoint.load_model(tmp_path / "random" / "model.pt")
    fitted_model, _ = checkpoint.load_model(tmp_path / "fitted" / "model.pt")
    assert random_ckpt["placement"]["mode"] == "random"
    table = random_model.embed["geophone"].structural_position.weight
    for row in summary["random"]["assigned"]:
        assert torch.equal(table[row["node_id"]], table[row["source_node_id"]])
    fitted_table = fitted_model.embed["geophone"].structural_position.weight
    assert torch.equal(fitted_table[:6], table[:6])
    assert not torch.equal(fitted_table[6:], table[6:])


def test_place_unknown_group_rejected(pretrained, store, tmp_path):
    with pytest.raises(ValueError, match=r"group 'zz' not found; groups in the store: \['s1', 's2', 's3'\]"):
        place(pretrained[1], store, "zz", "random", tmp_path / "model.pt", 0, tiny_tree(tmp_path))
    assert not (tmp_path / "model.pt").exists()


def test_place_cli_unknown_mode_and_group(pretrained, store, tmp_path):
    config = json.dumps(tiny_tree(tmp_path))
    common = ["placement", "--checkpoint", str(pretrained[1]), "--store", str(store), "--seed", "0", "--config", config]
    assert cli.main(common + ["--group", "zz", "--mode", "random", "--out", str(tmp_path / "a.pt")]) == 2
    with pytest.raises(SystemExit):
        cli.main(common + ["--group", "s3", "--mode", "learned", "--out", str(tmp_path / "b.pt")])
    assert cli.main(common + ["--group", "s3", "--mode", "random", "--out", str(tmp_path / "c.pt")]) == 0
    assert (tmp_path / "c.placement.json").exists()


def test_place_leaves_learned_group(pretrained, store, tmp_path):
    place(pretrained[1], store, "s1", "fitted", tmp_path / "model.pt", 0, tiny_tree(tmp_path))
    placed = torch.load(tmp_path / "model.pt", weights_only=False)
    source = torch.load(pretrained[1], weights_only=False)
    assert placed["placement"]["assigned"] == []
    assert "learned in pretraining" in placed["placement"]["note"]
    for key, value in source["state_dict"].items():
        assert torch.equal(placed["state_dict"][key], value), key


def test_place_without_structural_embedding(store, tmp_path):
    tree = tiny_tree(tmp_path, epochs=1)
    pretrain(store, tmp_path / "mae" / "model.pt", "mae", 0, tree, "tiny", exclude_groups=["s3"])
    place(tmp_path / "mae" / "model.pt", store, "s3", "fitted", tmp_path / "placed" / "model.pt", 0, tree)
    placed = torch.load(tmp_path / "placed" / "model.pt", weights_only=False)
    source = torch.load(tmp_path / "mae" / "model.pt", weights_only=False)
    assert "no structural embedding" in placed["placement"]["note"]
    for key, value in source["state_dict"].items():
        assert torch.equal(placed["state_dict"][key], value), key


def test_failed_fit_leaves_model_unchanged(pretrained, store, monkeypatch):
    model, ckpt = checkpoint.load_model(pretrained[1])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = WindowData.from_store(store, split="train", group="s3")
    train_epoch = placement_module._train_epoch

    def epoch_then_fail(*args, **kwargs):
        train_epoch(*args, **kwargs)  # the optimiser steps, so the override rows have moved
        raise FloatingPointError("pretraining loss became nan")

    monkeypatch.setattr(placement_module, "_train_epoch", epoch_then_fail)
    with pytest.raises(FloatingPointError):
        fit_structural_positions(model, data, [6, 7, 8], FIT_SETTINGS, ckpt["mask_ratio"], torch.Generator().manual_seed(0), "cpu")

    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed by a failed fit"
    assert all(isinstance(t, torch.nn.Embedding) for t in structural_tables(model).values())
    assert all(p.requires_grad for p in model.parameters())
