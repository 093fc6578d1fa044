"""Tests of multi-vehicle detection: mAP@r, Hungarian set loss, set-prediction head, fine-tuning, Table 2, Figure 4."""

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from spar.eval.detection import Detections, average_precision, match_detections, mean_average_precision
from spar.eval.figures import plot_fig4
from spar.eval.tables import write_table2
from spar.features.store import build_dataset, write_store
from spar.models.heads import SetPredictionHead
from spar.train.detection import SetPredictionLoss, finetune_detection, match_queries

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- mAP@r ----------------------------------------------------------------------------------------------


def _hand_made_case():
    """Two windows, classes A = 0 and B = 1, plus class C = 2 without ground truth.

    Ground truth: window 0 has A at (0, 0) and B at (10, 0); window 1 has A at (0, 0).
    Detections (score, window, class, position, distance to the object of that class there):
      d0: 0.95, w0, C, (50, 50)  -> C has no ground truth
      d1: 0.9,  w0, A, (3, 0)    -> 3 m from A in w0
      d2: 0.8,  w0, A, (1, 0)    -> 1 m from A in w0, but d1 ranks higher and takes it: a duplicate
      d3: 0.7,  w1, A, (0, 5)    -> 5 m from A in w1
      d4: 0.6,  w0, B, (10, 7)   -> 7 m from B in w0
      d5: 0.5,  w1, B, (0, 0)    -> w1 has no B
      d6: 0.4,  w0, B, (10, 2)   -> 2 m from B in w0
    """
    detections = Detections.build(
        window=[0, 0, 0, 1, 0, 1, 0],
        label=[2, 0, 0, 0, 1, 1, 1],
        position=[[50, 50], [3, 0], [1, 0], [0, 5], [10, 7], [0, 0], [10, 2]],
        score=[0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
    )
    truth = Detections.build(window=[0, 0, 1], label=[0, 1, 0], position=[[0, 0], [10, 0], [0, 0]])
    return detections, truth


def test_match_duplicate_is_false_positive():
    detections, truth = _hand_made_case()

    matched = match_detections(detections, truth, radius=4.0)

    # d1 takes A of w0 (row 0), so d2 finds it matched. d3 is 5 m > 4 m away. d6 takes B of w0 (row 1).
    assert matched.tolist() == [-1, 0, -1, -1, -1, -1, 1]


def test_map_hand_made_radius_4():
    detections, truth = _hand_made_case()

    (scores,) = mean_average_precision(detections, truth, radii=[4.0], classes=[0, 1, 2])

    # A (2 objects), ranked d1 TP, d2 FP, d3 FP: precision 1, 1/2, 1/3 at recall 1/2, 1/2, 1/2.
    #   AP = 1/2 * 1 = 0.5
    # B (1 object), ranked d4 FP, d5 FP, d6 TP: precision 0, 0, 1/3 at recall 0, 0, 1.
    #   AP = 1 * 1/3
    # C has no object: AP None, not in the mean. mAP = (1/2 + 1/3) / 2 = 5/12
    assert scores.ap[0] == pytest.approx(0.5)
    assert scores.ap[1] == pytest.approx(1 / 3)
    assert scores.ap[2] is None
    assert scores.mean_ap == pytest.approx(5 / 12)
    assert scores.n_truth == {0: 2, 1: 1, 2: 0}
    assert scores.n_true_positive == {0: 1, 1: 1, 2: 0}


def test_map_hand_made_radius_6():
    detections, truth = _hand_made_case()

    (scores,) = mean_average_precision(detections, truth, radii=[6.0], classes=[0, 1, 2])

    # A: d1 TP, d2 FP (duplicate), d3 TP (5 m <= 6 m): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    #   The envelope lifts the precision at recall 1/2 to 1 and keeps 2/3 at recall 1:
    #   AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    # B: d4 is 7 m > 6 m away, so B is as at 4 m: AP = 1/3. mAP = (5/6 + 1/3) / 2 = 7/12
    assert scores.ap[0] == pytest.approx(5 / 6)
    assert scores.ap[1] == pytest.approx(1 / 3)
    assert scores.mean_ap == pytest.approx(7 / 12)


def test_map_radius_is_inclusive():
    detections = Detections.build(window=[0], label=[0], position=[[3.0, 4.0]], score=[0.5])
    truth = Detections.build(window=[0], label=[0], position=[[0.0, 0.0]])

    at_5, below_5 = mean_average_precision(detections, truth, radii=[5.0, 4.99], classes=[0])

    assert at_5.mean_ap == 1.0
    assert below_5.mean_ap == 0.0


def test_match_takes_nearest_free_object():
    # Two A objects lie 2 m apart. The first detection, at (1.5, 0), is within 4 m of both and takes the nearer one (row 1).
    detections = Detections.build(window=[0, 0], label=[0, 0], position=[[1.5, 0.0], [0.5, 0.0]], score=[0.9, 0.8])
    truth = Detections.build(window=[0, 0], label=[0, 0], position=[[0.0, 0.0], [2.0, 0.0]])

    matched = match_detections(detections, truth, radius=4.0)

    # the second detection is nearer to row 0 and takes it, since row 1 is gone
    assert matched.tolist() == [1, 0]


def test_average_precision_without_detections():
    assert average_precision(np.zeros(0), np.zeros(0, dtype=bool), n_truth=3) == 0.0


def test_map_without_any_truth_rejected():
    detections = Detections.build(window=[0], label=[0], position=[[0.0, 0.0]], score=[0.5])
    truth = Detections.build(window=[], label=[], position=np.zeros((0, 2)))

    with pytest.raises(ValueError, match="no ground-truth object"):
        mean_average_precision(detections, truth, radii=[4.0], classes=[0, 1])


def test_detections_reject_nan_position():
    with pytest.raises(ValueError, match="NaN or infinite positions in 1 of 2 rows"):
        Detections.build(window=[0, 0], label=[0, 1], position=[[0.0, 0.0], [np.nan, 1.0]], score=[0.5, 0.4])


# --- Hungarian matching and set loss ------------------------------------------------------------------


def _probability_logits(rows):
    """Logits whose softmax is exactly ``rows`` (each row sums to 1)."""
    return torch.log(torch.tensor(rows, dtype=torch.float64))


def test_hungarian_beats_greedy_assignment():
    # two object classes and "no object"; objects g0 = class 0 at (0, 0) and g1 = class 1 at (4, 0)
    # q0 at (0.5, 0) and q1 at (-1, 0) have p = (0.5, 0.25, 0.25); q2 at (10, 10) has p = (0.25, 0.25, 0.5)
    # cost = -p(class) + L1 distance (both weights 1):
    #        g0                 g1
    #   q0   -0.5 + 0.5 = 0.0   -0.25 + 3.5 = 3.25
    #   q1   -0.5 + 1.0 = 0.5   -0.25 + 5.0 = 4.75
    #   q2   -0.25 + 20 = 19.75 -0.25 + 16  = 15.75
    # Taking the cheapest pair first (q0-g0, 0.0) forces q1-g1 (4.75): total 4.75.
    # The optimum is q0-g1 + q1-g0 = 3.75.
    prob = np.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
    position = np.array([[0.5, 0.0], [-1.0, 0.0], [10.0, 10.0]])

    queries, objects = match_queries(prob, position, np.array([0, 1]), np.array([[0.0, 0.0], [4.0, 0.0]]),
                                     class_weight=1.0, position_weight=1.0)

    assert queries.tolist() == [0, 1]
    assert objects.tolist() == [1, 0]


def test_set_loss_value_of_optimal_matching():
    logits = _probability_logits([[[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.25, 0.25, 0.5]]])
    positions = torch.tensor([[[0.5, 0.0], [-1.0, 0.0], [10.0, 10.0]]], dtype=torch.float64)
    target = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 4.0, 0.0]]], dtype=torch.float64)
    loss = SetPredictionLoss(n_classes=2, class_weight=1.0, position_weight=1.0, no_object_weight=0.1)

    terms = loss.terms((logits, positions), target)

    # class targets: q0 -> 1 (p 0.25), q1 -> 0 (p 0.5), q2 -> no object (p 0.5, weight 0.1)
    # CE = (ln 4 + ln 2 + 0.1 ln 2) / (1 + 1 + 0.1) = 3.1 ln 2 / 2.1
    # L1 = (|0.5 - 4| + |-1 - 0|) / 2 matched queries = (3.5 + 1) / 2 = 2.25
    queries, objects = terms["matches"][0]
    assert queries.tolist() == [0, 1]
    assert objects.tolist() == [1, 0]
    assert float(terms["class"]) == pytest.approx(3.1 * math.log(2) / 2.1)
    assert float(terms["position"]) == pytest.approx(2.25)
    assert float(terms["total"]) == pytest.approx(3.1 * math.log(2) / 2.1 + 2.25)


def test_set_loss_window_without_objects():
    # every query learns "no object", so CE = -ln p(no object) = ln 2 for each, and there is no position term
    logits = _probability_logits([[[0.25, 0.25, 0.5], [0.25, 0.25, 0.5]]])
    positions = torch.zeros(1, 2, 2, dtype=torch.float64, requires_grad=True)
    target = torch.full((1, 2, 3), float("nan"), dtype=torch.float64)
    loss = SetPredictionLoss(n_classes=2, class_weight=1.0, position_weight=5.0, no_object_weight=0.1)

    terms = loss.terms((logits, positions), target)

    assert float(terms["class"]) == pytest.approx(math.log(2))
    assert float(terms["position"].detach()) == 0.0
    terms["total"].backward()
    assert positions.grad is not None


def test_set_loss_more_objects_than_queries():
    logits = torch.zeros(1, 1, 3)
    positions = torch.zeros(1, 1, 2)
    target = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])

    with pytest.raises(ValueError, match="2 objects but the head has only 1 queries"):
        SetPredictionLoss(n_classes=2)((logits, positions), target)


# --- head -----------------------------------------------------------------------------------------------


def test_set_head_output_shapes():
    head = SetPredictionHead(dim=16, n_classes=4, queries=5, layers=2, heads=2)
    tokens = torch.randn(3, 7, 16)
    valid = torch.ones(3, 7, dtype=torch.bool)
    valid[1, 3:] = False
    valid[2] = False  # no valid token at all

    logits, positions = head(tokens, valid)

    assert logits.shape == (3, 5, 5)
    assert positions.shape == (3, 5, 2)
    assert torch.isfinite(logits).all()
    assert torch.isfinite(positions).all()


def test_set_head_ignores_invalid_tokens():
    head = SetPredictionHead(dim=16, n_classes=2, queries=3, layers=2, heads=2).eval()
    tokens = torch.randn(1, 6, 16)
    valid = torch.tensor([[True, True, True, False, False, False]])
    changed = tokens.clone()
    changed[:, 3:] = 100.0

    first = head(tokens, valid)
    second = head(changed, valid)

    torch.testing.assert_close(first[0], second[0])
    torch.testing.assert_close(first[1], second[1])


def test_set_loss_decreases_on_fixed_batch():
    torch.manual_seed(0)
    head = SetPredictionHead(dim=16, n_classes=3, queries=4, layers=2, heads=2)
    tokens = torch.randn(6, 5, 16)
    valid = torch.ones(6, 5, dtype=torch.bool)
    target = torch.full((6, 2, 3), float("nan"))
    target[:, 0] = torch.tensor([[0, 0.5, -0.5], [1, -1.0, 1.0], [2, 0.0, 0.0], [0, 1.0, 1.0], [1, -0.5, 0.5], [2, 0.2, -1.0]])
    target[1, 1] = torch.tensor([2, 1.5, 0.0])
    target[5] = float("nan")  # a window without objects
    loss_fn = SetPredictionLoss(n_classes=3)
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3)

    losses = []
    for _ in range(15):
        loss = loss_fn(head(tokens, valid), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))

    assert all(math.isfinite(value) for value in losses)
    assert losses[-1] < 0.5 * losses[0]


# --- fine-tuning end to end ----------------------------------------------------------------------------

CLASS_NAMES = ["car", "truck", "background"]


def _write_embeddings(path, objects, split, n_tokens=6, dim=8):
    """Write an embeddings .npz in the layout of `spar embed`, with random tokens and the given objects (S, 2, 3)."""
    rng = np.random.default_rng(0)
    n = objects.shape[0]
    valid = np.ones((n, n_tokens), dtype=bool)
    valid[0, 4:] = False
    meta = {"method": "spar", "seed": 0, "dataset": "m3nvc", "group": "i22", "position_unit": "m", "class_name": CLASS_NAMES}
    np.savez(
        path,
        tokens=rng.normal(size=(n, n_tokens, dim)).astype(np.float16),
        valid=valid,
        token_group=np.repeat(np.arange(n_tokens // 2), 2),
        split=np.array(split),
        time=(np.datetime64("2023-06-17T15:00:00", "ns") + np.arange(n) * np.timedelta64(2, "s")).astype(np.int64),
        sample=np.arange(100, 100 + n),
        label=np.full(n, -1),
        target=np.full((n, 2), np.nan, dtype=np.float32),
        objects=objects.astype(np.float32),
        object_count=np.isfinite(objects[:, :, 0]).sum(axis=1),
        meta=np.array(json.dumps(meta)),
    )
    return path


def _tiny_objects():
    """12 windows: every third one empty, the others a car and a truck at positions that move with the window."""
    objects = np.full((12, 2, 3), np.nan)
    for i in range(12):
        if i % 3 == 0:
            continue
        objects[i, 0] = [0, -10.0 + i, 5.0]
        objects[i, 1] = [1, 10.0, -5.0 + i]
    return objects


def _tree(tmp_path, **overrides):
    detection = {"queries": 3, "head_layers": 1, "epochs": 3, "batch_size": 4, "lr": 1e-3, "weight_decay": 0.01,
                 "class_weight": 1.0, "position_weight": 5.0, "no_object_weight": 0.1, "radii_m": [4, 6, 8, 10]}
    detection.update(overrides)
    return {"finetune": {"detection": detection}, "model": {"heads": 2, "mlp_ratio": 2.0},
            "pretrain": {"threads": 1}, "gpu": {"lock_dir": str(tmp_path / "locks")}}


def test_finetune_detection_writes_run(tmp_path):
    split = ["train"] * 8 + ["test"] * 4
    embeddings = _write_embeddings(tmp_path / "i22.npz", _tiny_objects(), split)
    out = tmp_path / "run"

    finetune_detection(embeddings, out, label_ratio=1.0, seed=0, tree=_tree(tmp_path))

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "detection"
    assert metrics["method"] == "spar"
    assert metrics["scene"] == "i22"
    assert metrics["n_train"] == 8
    assert metrics["n_test"] == 4
    assert metrics["radii_m"] == [4.0, 6.0, 8.0, 10.0]
    assert metrics["object_class_name"] == ["car", "truck"]
    # test windows 8..11: window 9 is empty, the other three hold a car and a truck
    assert metrics["n_test_objects"] == 6
    assert metrics["n_test_objects_per_class"] == {"car": 3, "truck": 3}
    for radius in (4, 6, 8, 10):
        assert 0.0 <= metrics[f"map@{radius}"] <= 1.0
        assert set(metrics[f"ap@{radius}"]) == {"car", "truck"}
    assert metrics["map@4"] <= metrics["map@10"]

    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["sample", "time", "query", "class_index", "class", "confidence", "no_object_prob", "east", "north"]
    assert len(predictions) == 4 * 3
    assert predictions["sample"].tolist() == [108] * 3 + [109] * 3 + [110] * 3 + [111] * 3
    assert predictions["query"].tolist() == [0, 1, 2] * 4
    assert set(predictions["class"]) <= {"car", "truck"}
    assert ((predictions["confidence"] + predictions["no_object_prob"]) <= 1.0 + 1e-3).all()

    truth = pd.read_csv(out / "ground_truth.csv")
    assert truth["sample"].tolist() == [108, 108, 110, 110, 111, 111]
    assert truth["class"].tolist() == ["car", "truck"] * 3
    assert truth["east"].tolist() == [-2.0, 10.0, 0.0, 10.0, 1.0, 10.0]
    assert truth["north"].tolist() == [5.0, 3.0, 5.0, 5.0, 5.0, 6.0]
    assert truth["time"].iloc[0] == "2023-06-17T15:00:16.000000Z"
    assert (out / "head.pt").exists()


def test_finetune_detection_too_few_queries(tmp_path):
    embeddings = _write_embeddings(tmp_path / "i22.npz", _tiny_objects(), ["train"] * 8 + ["test"] * 4)

    with pytest.raises(ValueError, match="windows with 2 objects, more than finetune.detection.queries = 1"):
        finetune_detection(embeddings, tmp_path / "run", label_ratio=1.0, seed=0, tree=_tree(tmp_path, queries=1))


def test_finetune_detection_rejects_background_object(tmp_path):
    objects = _tiny_objects()
    objects[1, 0, 0] = 2  # "background" is no object class
    embeddings = _write_embeddings(tmp_path / "i22.npz", objects, ["train"] * 8 + ["test"] * 4)

    with pytest.raises(ValueError, match=r"i22.npz: an object has class index 2, which is not an object class"):
        finetune_detection(embeddings, tmp_path / "run", label_ratio=1.0, seed=0, tree=_tree(tmp_path))


# --- Table 2 ---------------------------------------------------------------------------------------------


def _write_run(root, method, seed, maps, scene="i22"):
    folder = root / method / f"seed{seed}"
    folder.mkdir(parents=True)
    values = {"task": "detection", "method": method, "seed": seed, "label_ratio": 1.0, "scene": scene}
    values.update({f"map@{radius}": value for radius, value in zip((4, 6, 8, 10), maps)})
    path = folder / "metrics.json"
    path.write_text(json.dumps(values))
    return path


def test_table2_known_numbers(tmp_path):
    paths = [
        _write_run(tmp_path, "spar", 0, [0.2, 0.5, 0.6, 0.7]),
        _write_run(tmp_path, "spar", 1, [0.4, 0.5, 0.8, 0.9]),
        _write_run(tmp_path, "mae", 0, [0.1, 0.3, 0.9, 0.9]),
        _write_run(tmp_path, "mae", 1, [0.1, 0.3, 0.9, 0.9]),
    ]
    out = tmp_path / "table2.csv"

    write_table2(paths, out, methods=["spar", "mae"])

    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["method", "map_pct_mean@4m", "map_pct_std@4m", "map_pct_mean@6m", "map_pct_std@6m",
                             "map_pct_mean@8m", "map_pct_std@8m", "map_pct_mean@10m", "map_pct_std@10m", "n_seeds"]
    assert [row["method"] for row in rows] == ["spar", "mae"]
    # spar at 4 m: 20% and 40% -> mean 30%, sample std sqrt(((20-30)^2 + (40-30)^2) / 1) = 14.142%
    assert float(rows[0]["map_pct_mean@4m"]) == pytest.approx(30.0)
    assert float(rows[0]["map_pct_std@4m"]) == pytest.approx(math.sqrt(200.0))
    assert float(rows[1]["map_pct_mean@8m"]) == pytest.approx(90.0)
    assert float(rows[1]["map_pct_std@8m"]) == 0.0
    assert rows[0]["n_seeds"] == "2"

    markdown = out.with_suffix(".md").read_text()
    assert "| spar | **30.00 ± 14.14** | **50.00 ± 0.00** | 70.00 ± 14.14 | 80.00 ± 14.14 |" in markdown
    assert "| mae | 10.00 ± 0.00 | 30.00 ± 0.00 | **90.00 ± 0.00** | **90.00 ± 0.00** |" in markdown


def test_table2_missing_method(tmp_path):
    paths = [_write_run(tmp_path, "spar", 0, [0.2, 0.5, 0.6, 0.7])]

    with pytest.raises(ValueError, match="no run of method 'mae'"):
        write_table2(paths, tmp_path / "table2.csv", methods=["spar", "mae"])


def test_table2_mixed_scenes_rejected(tmp_path):
    paths = [_write_run(tmp_path, "spar", 0, [0.2] * 4), _write_run(tmp_path, "mae", 0, [0.2] * 4, scene="h24")]

    with pytest.raises(ValueError, match="different scene values"):
        write_table2(paths, tmp_path / "table2.csv", methods=["spar", "mae"])


# --- Figure 4 --------------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    """Store with scene i22: three nodes and two windows."""
    node_id = np.array([[0, 1, 2], [0, 1, 2]])
    position = np.array([[[0.0, 0.0], [30.0, 0.0], [15.0, 25.0]]] * 2)
    ds = build_dataset(
        signals={"microphone": np.zeros((2, 3, 1, 2, 2))},
        present={"microphone": node_id >= 0},
        position=position,
        node_id=node_id,
        node_name=["i22/rs1", "i22/rs2", "i22/rs3"],
        time=np.array(["2023-06-17T15:00:00", "2023-06-17T15:00:02"], dtype="datetime64[ns]"),
        group=["i22", "i22"],
        split=["test", "test"],
        axis_names=["east", "north"],
        attrs={"position_unit": "m"},
    )
    path = tmp_path / "m3nvc.zarr"
    write_store(ds, path)
    return path


def _write_detection_run(root, method):
    folder = root / method
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"task": "detection", "method": method, "seed": 0, "scene": "i22", "map@4": 0.5}))
    (folder / "ground_truth.csv").write_text(
        "sample,time,object,class_index,class,east,north\n"
        "7,2023-06-17T15:00:00.000000Z,0,0,car,5.0,5.0\n"
        "7,2023-06-17T15:00:00.000000Z,1,1,truck,20.0,10.0\n"
    )
    # window 7: the car found (TP), a second car near it (FP), the truck missed (FN), one query below the threshold
    (folder / "predictions.csv").write_text(
        "sample,time,query,class_index,class,confidence,no_object_prob,east,north\n"
        "7,2023-06-17T15:00:00.000000Z,0,0,car,0.9,0.05,6.0,5.0\n"
        "7,2023-06-17T15:00:00.000000Z,1,0,car,0.7,0.2,5.0,6.0\n"
        "7,2023-06-17T15:00:00.000000Z,2,1,truck,0.3,0.6,20.0,10.0\n"
    )
    return folder / "predictions.csv"


def test_fig4_writes_png(tmp_path, store):
    paths = [_write_detection_run(tmp_path, "spar"), _write_detection_run(tmp_path, "mae")]
    out = tmp_path / "figures" / "fig4.png"

    plot_fig4(paths, store, out, scene="i22", n_windows=4, threshold=0.5, radius=4.0)

    assert out.read_bytes()[:8] == PNG_SIGNATURE
    height, width = imread(out).shape[:2]
    assert width > 0
    assert height > 0
    assert list(out.parent.iterdir()) == [out]


def test_fig4_window_outcome(tmp_path):
    from spar.eval.figures import _window_outcome, read_detections

    run = read_detections(_write_detection_run(tmp_path, "spar"), scene="i22")
    shown = run.predictions[run.predictions["confidence"] >= 0.5]

    hit, found = _window_outcome(shown, run.truth, radius=4.0)

    assert hit.tolist() == [True, False]
    assert found.tolist() == [True, False]


def test_fig4_rejects_other_scene(tmp_path, store):
    path = _write_detection_run(tmp_path, "spar")

    with pytest.raises(ValueError, match="from scene 'i22', but the figure is for scene 'h24'"):
        plot_fig4([path], store, tmp_path / "fig4.png", scene="h24")
