"""Message drop on windows, and Tables 5 to 8 built from hand-made runs."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from spar.data.windows import WindowData
from spar.eval.experiment_tables import write_experiment_table
from spar.train.embed import drop_messages


def make_windows(n_windows=400, n_slots=5, empty_slot=4):
    """Windows with two modalities; slot ``empty_slot`` has no node in any window."""
    node_id = torch.arange(n_slots).repeat(n_windows, 1)
    node_id[:, empty_slot] = -1
    tensors = {"node_id": node_id, "position": torch.zeros(n_windows, n_slots, 2)}
    for m in ("microphone", "geophone"):
        tensors[f"present_{m}"] = node_id >= 0
        tensors[f"signal_{m}"] = torch.ones(n_windows, n_slots, 1, 4, 3) * (node_id >= 0)[:, :, None, None, None]
    return WindowData(
        tensors=tensors, modalities=["geophone", "microphone"], attrs={}, split=np.array(["train"] * n_windows),
        group=np.array(["h24"] * n_windows), time=np.zeros(n_windows, dtype="datetime64[ns]"),
        n_global_nodes=n_slots, node_name=np.array([f"n{i}" for i in range(n_slots)]), class_name=["a"],
    )


def test_drop_messages_rate_and_both_modalities():
    data = make_windows()
    n_dropped = drop_messages(data, drop_prob=0.2, seed=7)

    lost = ~data.tensors["present_microphone"][:, :4]
    # 1600 messages at p = 0.2: 320 expected, std 16, so 320 +/- 64 is a 4-sigma band
    assert n_dropped == int(lost.sum())
    assert 256 <= n_dropped <= 384
    # a node loses its whole message: both modalities, and its signal is zeroed
    assert torch.equal(data.tensors["present_geophone"], data.tensors["present_microphone"])
    assert data.tensors["signal_geophone"][:, :4][lost].abs().sum().item() == 0.0
    assert data.tensors["signal_geophone"][:, :4][~lost].min().item() == 1.0


def test_drop_messages_seeded_and_skips_empty_slots():
    first, second, other = make_windows(), make_windows(), make_windows()
    drop_messages(first, 0.1, seed=3)
    drop_messages(second, 0.1, seed=3)
    drop_messages(other, 0.1, seed=4)

    assert torch.equal(first.tensors["present_microphone"], second.tensors["present_microphone"])
    assert not torch.equal(first.tensors["present_microphone"], other.tensors["present_microphone"])
    assert drop_messages(make_windows(), 0.0, seed=3) == 0
    # the empty slot was never present, so it cannot be counted as a drop
    data = make_windows(n_windows=10)
    assert drop_messages(data, 0.999, seed=0) <= 40


def test_drop_messages_rejects_probability_one():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        drop_messages(make_windows(), 1.0, seed=0)


def write_run(root, name, values):
    path = root / name / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"task": "localization", "scene": "h24", **values}))
    return path


def test_table6_column_groups(tmp_path):
    rows = []
    for method, base in (("spar", 10.0), ("mae", 20.0)):
        paths = []
        for prob in (0.05, 0.2):
            for seed in (0, 1):
                mse = base + 100 * prob + 2 * seed  # spar @0.05: 15 and 17
                paths.append(write_run(tmp_path, f"{method}_{prob}_{seed}", {
                    "method": method, "seed": seed, "drop_prob": prob, "mse_m2": mse, "distance_m": mse / 5,
                }))
        rows.append((method, paths))
    out = tmp_path / "table6.csv"
    write_experiment_table("table6", rows, out, columns=[0.05, 0.2], summary=tmp_path / "t6.json")

    table = pd.read_csv(out)
    assert table["method"].tolist() == ["spar", "mae"]
    assert table.loc[0, "mse_m2_mean@0.05"] == pytest.approx(16.0)
    assert table.loc[0, "mse_m2_std@0.05"] == pytest.approx(np.sqrt(2.0))
    assert table.loc[1, "distance_m_mean@0.2"] == pytest.approx(41.0 / 5)
    assert table.loc[1, "n_seeds@0.2"] == 2
    markdown = out.with_suffix(".md").read_text()
    assert "| Method | drop 5%: MSE (m²) | drop 5%: Dist. (m) | drop 20%: MSE (m²) | drop 20%: Dist. (m) |" in markdown
    assert "| spar | **16.00 ± 1.41** | **3.20 ± 0.28** | **31.00 ± 1.41** | **6.20 ± 0.28** |" in markdown
    assert json.loads((tmp_path / "t6.json").read_text())["mae"]["mse_m2@0.2"] == pytest.approx(41.0)


def test_table6_missing_column_named(tmp_path):
    paths = [write_run(tmp_path, "a", {"method": "spar", "seed": 0, "drop_prob": 0.1, "mse_m2": 1.0, "distance_m": 1.0})]
    with pytest.raises(ValueError, match="drop_prob=0.2"):
        write_experiment_table("table6", [("spar", paths)], tmp_path / "t.csv", columns=[0.1, 0.2])


def test_table8_row_titles_and_percent_free(tmp_path):
    full = [write_run(tmp_path, f"full{s}", {"method": "spar", "seed": s, "mse_m2": 12.0 + s, "distance_m": 4.0}) for s in (0, 1)]
    ablated = [write_run(tmp_path, f"abl{s}", {"method": "spar", "seed": s, "variant": "no_spatial_embedding",
                                                "mse_m2": 14.0, "distance_m": 4.5}) for s in (0, 1)]
    out = tmp_path / "table8.csv"
    write_experiment_table("table8", [("full", full), ("no_spatial_embedding", ablated)], out,
                           row_titles={"no_spatial_embedding": "w/o spatial embedding"})

    assert pd.read_csv(out)["variant"].tolist() == ["full", "no_spatial_embedding"]
    markdown = out.with_suffix(".md").read_text()
    assert "| full | **12.50 ± 0.71** | **4.00 ± 0.00** |" in markdown
    assert "| w/o spatial embedding | 14.00 ± 0.00 | 4.50 ± 0.00 |" in markdown


def test_table5_accuracy_as_percent(tmp_path):
    paths = [write_run(tmp_path, f"c{s}", {"task": "vehicle", "method": "mae", "seed": s, "accuracy": acc, "macro_f1": acc})
             for s, acc in enumerate((0.9, 0.8))]
    out = tmp_path / "table5.csv"
    write_experiment_table("table5", [("mae", paths)], out)
    assert pd.read_csv(out).loc[0, "accuracy_mean"] == pytest.approx(0.85)
    assert "| mae | **85.00 ± 7.07** | **85.00 ± 7.07** |" in out.with_suffix(".md").read_text()


def test_experiment_table_duplicate_seed_and_mixed_scenes(tmp_path):
    a = write_run(tmp_path, "a", {"method": "spar", "seed": 0, "mse_m2": 1.0, "distance_m": 1.0})
    b = write_run(tmp_path, "b", {"method": "spar", "seed": 0, "mse_m2": 2.0, "distance_m": 1.0})
    with pytest.raises(ValueError, match="duplicate run"):
        write_experiment_table("table7", [("spar", [a, b])], tmp_path / "t.csv")
    c = tmp_path / "c" / "metrics.json"
    c.parent.mkdir()
    c.write_text(json.dumps({"task": "localization", "scene": "h08", "seed": 1, "mse_m2": 1.0, "distance_m": 1.0}))
    with pytest.raises(ValueError, match="different scene values"):
        write_experiment_table("table7", [("spar", [a]), ("mae", [c])], tmp_path / "t.csv")
