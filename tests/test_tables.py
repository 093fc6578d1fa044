"""Tests of spar.eval.tables: Table 1 from hand-made metrics.json files."""

import csv
import json
import math

import pytest

from spar.eval.tables import (
    MarkdownColumn,
    SeedSummary,
    render_markdown_table,
    summarize_seeds,
    table1_columns,
    write_table1,
)


def _write_run(root, method, ratio, seed, mse, distance, scene="h24", name="metrics.json"):
    folder = root / "runs" / method / f"ratio{ratio}" / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        json.dumps(
            {
                "task": "localization",
                "method": method,
                "seed": seed,
                "label_ratio": ratio,
                "scene": scene,
                "mse_m2": mse,
                "distance_m": distance,
                "n_train": 60,
                "n_test": 40,
            }
        )
    )
    return path


@pytest.fixture
def runs(tmp_path):
    """Write runs of two methods at ratios 1.0 and 0.5, three seeds each.

    | cell      | MSE per seed | mean, std    | distance per seed | mean, std   |
    | spar @1.0 | 10, 12, 14   | 12, 2        | 3, 4, 5           | 4, 1        |
    | mae @1.0  | 20, 20, 20   | 20, 0        | 6, 6, 6           | 6, 0        |
    | spar @0.5 | 30, 30, 36   | 32, sqrt(12) | 7, 8, 9           | 8, 1        |
    | mae @0.5  | 25, 26, 27   | 26, 1        | 5, 5, 8           | 6, sqrt(3)  |
    """
    values = {
        ("spar", 1.0): ([10, 12, 14], [3, 4, 5]),
        ("mae", 1.0): ([20, 20, 20], [6, 6, 6]),
        ("spar", 0.5): ([30, 30, 36], [7, 8, 9]),
        ("mae", 0.5): ([25, 26, 27], [5, 5, 8]),
    }
    paths = []
    for (method, ratio), (mses, distances) in values.items():
        for seed, (mse, distance) in enumerate(zip(mses, distances)):
            paths.append(_write_run(tmp_path, method, ratio, seed, float(mse), float(distance)))
    return paths


def _read_csv(path):
    with path.open() as fh:
        return list(csv.reader(fh))


def test_summarize_seeds_known_numbers():
    summary = summarize_seeds([10.0, 12.0, 14.0])

    assert summary.mean == pytest.approx(12.0)
    assert summary.std == pytest.approx(2.0)
    assert summary.n_seeds == 3


def test_summarize_seeds_single_seed_std_zero():
    summary = summarize_seeds([7.5])

    assert summary.mean == 7.5
    assert summary.std == 0.0
    assert summary.n_seeds == 1


def test_summarize_seeds_rejects_nan():
    with pytest.raises(ValueError, match="non-finite"):
        summarize_seeds([1.0, math.nan])


def test_table1_csv_columns_exact(tmp_path, runs):
    out = tmp_path / "results" / "table1.csv"
    write_table1(runs, out, methods=["spar", "mae"], label_ratios=[1.0, 0.5])

    header = _read_csv(out)[0]
    assert header == [
        "method",
        "mse_m2_mean@1.0", "mse_m2_std@1.0", "distance_m_mean@1.0", "distance_m_std@1.0", "n_seeds@1.0",
        "mse_m2_mean@0.5", "mse_m2_std@0.5", "distance_m_mean@0.5", "distance_m_std@0.5", "n_seeds@0.5",
    ]
    assert table1_columns([0.2])[1:] == ["mse_m2_mean@0.2", "mse_m2_std@0.2", "distance_m_mean@0.2", "distance_m_std@0.2", "n_seeds@0.2"]


def test_table1_csv_values(tmp_path, runs):
    out = tmp_path / "table1.csv"
    write_table1(runs, out, methods=["spar", "mae"], label_ratios=[1.0, 0.5])

    rows = _read_csv(out)
    header, spar, mae = rows[0], dict(zip(rows[0], rows[1])), dict(zip(rows[0], rows[2]))
    assert len(rows) == 3
    assert spar["method"] == "spar"
    assert mae["method"] == "mae"
    assert float(spar["mse_m2_mean@1.0"]) == pytest.approx(12.0)
    assert float(spar["mse_m2_std@1.0"]) == pytest.approx(2.0)
    assert float(spar["distance_m_mean@1.0"]) == pytest.approx(4.0)
    assert float(spar["distance_m_std@1.0"]) == pytest.approx(1.0)
    assert spar["n_seeds@1.0"] == "3"
    assert float(spar["mse_m2_std@0.5"]) == pytest.approx(math.sqrt(12.0))
    assert float(mae["mse_m2_std@1.0"]) == 0.0
    assert float(mae["distance_m_std@0.5"]) == pytest.approx(math.sqrt(3.0))
    assert "nan" not in out.read_text().lower()


def test_table1_rows_follow_methods_order(tmp_path, runs):
    out = tmp_path / "table1.csv"
    write_table1(runs, out, methods=["mae", "spar"], label_ratios=[0.5])

    rows = _read_csv(out)
    assert [row[0] for row in rows[1:]] == ["mae", "spar"]
    assert len(rows[0]) == 1 + 5


def test_table1_markdown_cells_and_bold(tmp_path, runs):
    out = tmp_path / "table1.csv"
    write_table1(runs, out, methods=["spar", "mae"], label_ratios=[1.0, 0.5])

    markdown = out.with_suffix(".md").read_text()
    lines = markdown.splitlines()
    assert lines[0].startswith("# Table 1")
    assert "mean ± sample std" in markdown
    header = next(line for line in lines if line.startswith("| Method"))
    assert header == "| Method | MSE (m²) @100% | Dist. (m) @100% | MSE (m²) @50% | Dist. (m) @50% |"
    spar_row = next(line for line in lines if line.startswith("| spar |"))
    mae_row = next(line for line in lines if line.startswith("| mae |"))
    # spar is best at 100%, mae at 50%
    assert spar_row == "| spar | **12.00 ± 2.00** | **4.00 ± 1.00** | 32.00 ± 3.46 | 8.00 ± 1.00 |"
    assert mae_row == "| mae | 20.00 ± 0.00 | 6.00 ± 0.00 | **26.00 ± 1.00** | **6.00 ± 1.73** |"


def test_table1_no_partial_files_left(tmp_path, runs):
    out = tmp_path / "results" / "table1.csv"
    write_table1(runs, out, methods=["spar", "mae"], label_ratios=[1.0])

    assert sorted(p.name for p in out.parent.iterdir()) == ["table1.csv", "table1.md"]


def test_table1_missing_method(tmp_path, runs):
    with pytest.raises(ValueError, match=r"no run of method 'cmc'.*metrics\.json"):
        write_table1(runs, tmp_path / "t.csv", methods=["spar", "cmc"], label_ratios=[1.0])
    assert not (tmp_path / "t.csv").exists()


def test_table1_missing_ratio(tmp_path, runs):
    with pytest.raises(ValueError, match=r"label ratio 0\.2.*metrics\.json"):
        write_table1(runs, tmp_path / "t.csv", methods=["spar"], label_ratios=[1.0, 0.2])


def test_table1_missing_cell(tmp_path, runs):
    # ratio 0.5 exists for spar only once mae's runs at 0.5 are left out
    remaining = [path for path in runs if not ("mae" in str(path) and "ratio0.5" in str(path))]
    with pytest.raises(ValueError, match=r"method 'mae' with label ratio 0\.5"):
        write_table1(remaining, tmp_path / "t.csv", methods=["spar", "mae"], label_ratios=[0.5])


def test_table1_duplicate_run_names_both_files(tmp_path, runs):
    copy = _write_run(tmp_path, "spar", 1.0, 0, 11.0, 3.5, name="metrics-copy.json")
    original = next(path for path in runs if "spar" in str(path) and "ratio1.0" in str(path) and "seed0" in str(path))

    with pytest.raises(ValueError, match="duplicate run") as info:
        write_table1(runs + [copy], tmp_path / "t.csv", methods=["spar", "mae"], label_ratios=[1.0])
    assert str(original) in str(info.value)
    assert str(copy) in str(info.value)


def test_table1_single_seed_cell(tmp_path, runs):
    extra = _write_run(tmp_path, "cmc", 1.0, 0, 50.0, 9.0)
    out = tmp_path / "t.csv"
    write_table1(runs + [extra], out, methods=["spar", "cmc"], label_ratios=[1.0])

    rows = {row[0]: row for row in _read_csv(out)[1:]}
    assert float(rows["cmc"][2]) == 0.0
    assert rows["cmc"][5] == "1"
    markdown = out.with_suffix(".md").read_text()
    assert "| cmc | 50.00 (n=1) | 9.00 (n=1) |" in markdown


def test_table1_mixed_scenes_rejected(tmp_path, runs):
    other = _write_run(tmp_path, "spar", 1.0, 5, 12.0, 4.0, scene="i22")
    with pytest.raises(ValueError, match="different scene values"):
        write_table1(runs + [other], tmp_path / "t.csv", methods=["spar"], label_ratios=[1.0])


def test_table1_nan_metric_names_file(tmp_path, runs):
    bad = runs[0]
    values = json.loads(bad.read_text())
    values["mse_m2"] = float("nan")
    bad.write_text(json.dumps(values))

    with pytest.raises(ValueError, match=str(bad)):
        write_table1(runs, tmp_path / "t.csv", methods=["spar", "mae"], label_ratios=[1.0])


def test_markdown_bold_higher_is_better_and_ties():
    columns = [MarkdownColumn("mAP@4m", better="higher")]
    cells = [[SeedSummary(41.571, 1.0, 3)], [SeedSummary(41.569, 2.0, 3)], [SeedSummary(22.1, 0.5, 3)]]

    text = render_markdown_table("Table 2", "note", "Method", ["a", "b", "c"], columns, cells)

    # 41.571 and 41.569 both show as 41.57, so both are bold
    assert "| a | **41.57 ± 1.00** |" in text
    assert "| b | **41.57 ± 2.00** |" in text
    assert "| c | 22.10 ± 0.50 |" in text
