"""Table 3 aggregation, the confusion-matrix figure and classification metrics on hand-made runs."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from spar.eval.figures import plot_confusion_matrices
from spar.eval.metrics import accuracy, confusion_matrix, macro_f1
from spar.eval.tables import write_table3


def write_run(root, name, values):
    path = root / name / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(values))
    return path


def ridgecrest_runs(root):
    paths = []
    for method, mses in (("spar", [20.0, 24.0]), ("mae", [30.0, 34.0])):
        for seed, mse in enumerate(mses):
            paths.append(write_run(root, f"rc_{method}_{seed}", {
                "task": "earthquake", "method": method, "seed": seed, "mse_km2": mse, "distance_km": mse / 4,
            }))
    return paths


def har_runs(root):
    paths = []
    for method, accs in (("spar", [0.90, 0.80]), ("mae", [0.85, 0.87])):
        for seed, acc in enumerate(accs):
            paths.append(write_run(root, f"har_{method}_{seed}", {
                "task": "activity", "method": method, "seed": seed, "accuracy": acc, "macro_f1": acc - 0.05,
            }))
    return paths


def test_table3_both_halves(tmp_path):
    out = tmp_path / "table3.csv"
    write_table3(ridgecrest_runs(tmp_path), har_runs(tmp_path), out, methods=["spar", "mae"])

    table = pd.read_csv(out)
    assert table["method"].tolist() == ["spar", "mae"]
    assert table.loc[0, "ridgecrest_mse_km2_mean"] == pytest.approx(22.0)
    assert table.loc[0, "ridgecrest_mse_km2_std"] == pytest.approx(np.std([20.0, 24.0], ddof=1))
    assert table.loc[1, "har_accuracy_mean"] == pytest.approx(0.86)
    assert table.loc[0, "har_n_seeds"] == 2

    markdown = out.with_suffix(".md").read_text()
    # HAR cells are percentages; the best accuracy (mae, 86.00) is bold, and so is spar's lower MSE
    assert "| spar | **22.00 ± 2.83** | **5.50 ± 0.71** | 85.00 ± 7.07 | 80.00 ± 7.07 |" in markdown
    assert "| mae | 32.00 ± 2.83 | 8.00 ± 0.71 | **86.00 ± 1.41** | **81.00 ± 1.41** |" in markdown


def test_table3_one_half(tmp_path):
    out = tmp_path / "table3.csv"
    write_table3(ridgecrest_runs(tmp_path), [], out, methods=["spar", "mae"])
    columns = pd.read_csv(out).columns.tolist()
    assert "ridgecrest_distance_km_mean" in columns
    assert not any(c.startswith("har_") for c in columns)


def test_table3_missing_method(tmp_path):
    with pytest.raises(ValueError, match="no har run of method 'cmc'"):
        write_table3([], har_runs(tmp_path), tmp_path / "t.csv", methods=["spar", "cmc"])


def test_classification_metrics_hand_made():
    # 3 classes; class 0: 2 of 3 right, class 1: 2 of 2 right, class 2: 1 of 2 right
    true = np.array([0, 0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 2, 0])
    assert accuracy(true, pred) == pytest.approx(5 / 7)
    np.testing.assert_array_equal(confusion_matrix(true, pred, 3), [[2, 1, 0], [0, 2, 0], [1, 0, 1]])
    # per class F1: class 0 p=2/3 r=2/3 -> 2/3; class 1 p=2/3 r=1 -> 0.8; class 2 p=1 r=1/2 -> 2/3
    assert macro_f1(true, pred, 3) == pytest.approx((2 / 3 + 0.8 + 2 / 3) / 3)


def test_confusion_figure_from_runs(tmp_path):
    names = ["walking", "running", "sitting"]
    matrix = [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    paths = [write_run(tmp_path, method, {
        "method": method, "accuracy": 5 / 7, "macro_f1": 0.71, "class_name": names, "confusion_matrix": matrix,
    }) for method in ("spar", "mae")]
    out = tmp_path / "fig7.png"

    plot_confusion_matrices(paths, out, title="Figure 7")

    image = imread(out)
    assert image.shape[1] > image.shape[0]  # two panels side by side
    assert out.stat().st_size > 10_000


def test_confusion_figure_rejects_regression_run(tmp_path):
    path = write_run(tmp_path, "loc", {"method": "spar", "mse_m2": 3.0})
    with pytest.raises(ValueError, match="not the metrics of a classification run"):
        plot_confusion_matrices([path], tmp_path / "x.png", title="t")


def test_confusion_figure_wraps_rows(tmp_path):
    names = ["walking", "running", "sitting"]
    matrix = [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    methods = [f"method{i}" for i in range(7)]
    paths = [write_run(tmp_path, method, {
        "method": method, "accuracy": 5 / 7, "macro_f1": 0.71, "class_name": names, "confusion_matrix": matrix,
    }) for method in methods]
    out = tmp_path / "fig7.png"

    plot_confusion_matrices(paths, out, title="Figure 7")

    # 3 classes give 0.45 * 3 + 2 = 3.35 in per panel; seven runs fill two rows of five, at 150 dpi
    height, width = imread(out).shape[:2]
    assert abs(width - 3.35 * 5 * 150) <= 1
    assert abs(height - (3.35 * 2 + 0.6) * 150) <= 1
