"""Tests of spar.eval.figures: Figure 3 from a tiny tensor store and hand-made predictions."""

import json

import numpy as np
import pytest
from matplotlib.image import imread

from spar.eval.figures import _common_limits, panel_height_in, plot_fig3, read_node_layout, read_predictions
from spar.features.store import build_dataset, write_store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path):
    """Store with scene h24 (nodes rs1, rs2, rs3; rs3 absent from the first window) and scene s31 (node rs7)."""
    n_sample, n_node = 4, 3
    nan = np.nan
    node_id = np.array([[0, 1, -1], [0, 1, 2], [3, -1, -1], [3, -1, -1]])
    position = np.array(
        [
            [[0.0, 0.0], [10.0, 0.0], [nan, nan]],
            [[0.0, 0.0], [10.0, 0.0], [5.0, 8.0]],
            [[100.0, 100.0], [nan, nan], [nan, nan]],
            [[100.0, 100.0], [nan, nan], [nan, nan]],
        ]
    )
    present = node_id >= 0
    ds = build_dataset(
        signals={"microphone": np.zeros((n_sample, n_node, 1, 2, 2))},
        present={"microphone": present},
        position=position,
        node_id=node_id,
        node_name=["h24/rs1", "h24/rs2", "h24/rs3", "s31/rs7"],
        time=np.array(["2023-06-12T15:00:00", "2023-06-12T15:00:02", "2023-06-12T16:00:00", "2023-06-12T16:00:02"], dtype="datetime64[ns]"),
        group=["h24", "h24", "s31", "s31"],
        split=["test"] * n_sample,
        axis_names=["east", "north"],
        attrs={"position_unit": "m"},
    )
    path = tmp_path / "m3nvc.zarr"
    write_store(ds, path)
    return path


def _write_predictions(root, method, offset, scene="h24"):
    folder = root / "runs" / method
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"task": "localization", "method": method, "seed": 0, "label_ratio": 1.0, "scene": scene}))
    true = np.array([[1.0, 1.0], [4.0, 2.0], [8.0, 6.0]])
    pred = true + offset
    lines = ["sample,time,true_east,true_north,pred_east,pred_north"]
    for i, ((te, tn), (pe, pn)) in enumerate(zip(true, pred)):
        lines.append(f"{i},2023-06-12T15:00:0{2 * i}Z,{te},{tn},{pe},{pn}")
    path = folder / "predictions.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_node_layout_of_scene(store):
    layout = read_node_layout(store, "h24")

    assert layout.names == ["rs1", "rs2", "rs3"]
    np.testing.assert_allclose(layout.positions, [[0.0, 0.0], [10.0, 0.0], [5.0, 8.0]])
    assert layout.unit == "m"


def test_node_layout_unknown_scene(store):
    with pytest.raises(ValueError, match=r"no samples of scene 'x99'.*'h24', 's31'"):
        read_node_layout(store, "x99")


def test_fig3_writes_png(tmp_path, store):
    paths = [_write_predictions(tmp_path, "spar", np.array([3.0, 4.0])), _write_predictions(tmp_path, "mae", np.array([6.0, 8.0]))]
    out = tmp_path / "figures" / "fig3.png"

    plot_fig3(paths, store, out, scene="h24")

    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000
    # two panels 4.2 inches wide at 150 dpi; the height follows the data's aspect ratio
    height, width = imread(out).shape[:2]
    assert width == 1260
    xlim, ylim = _common_limits([read_predictions(p) for p in paths], read_node_layout(store, "h24"))
    aspect = (ylim[1] - ylim[0]) / (xlim[1] - xlim[0])
    assert height == round(150 * (panel_height_in(aspect) + 0.8))
    assert [p.name for p in out.parent.iterdir()] == ["fig3.png"]


def test_fig3_predictions_never_gray(tmp_path, store, monkeypatch):
    from matplotlib.axes import Axes

    drawn = []
    original = Axes.scatter

    def record(self, *args, **kwargs):
        drawn.append((kwargs.get("label"), kwargs.get("c")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", record)
    methods = [f"method{i}" for i in range(10)]
    paths = [_write_predictions(tmp_path, name, np.array([1.0, 1.0])) for name in methods]

    plot_fig3(paths, store, tmp_path / "fig3.png", scene="h24")

    truth = {c for label, c in drawn if label == "ground truth"}
    predictions = [c for label, c in drawn if label == "prediction"]
    assert truth == {"0.55"}
    assert len(predictions) == 10
    # tab10's eighth colour, C7, is the gray of the ground truth
    assert "C7" not in predictions


def test_fig3_duplicate_method(tmp_path, store):
    first = _write_predictions(tmp_path / "a", "spar", np.array([1.0, 0.0]))
    second = _write_predictions(tmp_path / "b", "spar", np.array([2.0, 0.0]))

    with pytest.raises(ValueError, match="method 'spar' has two predictions files"):
        plot_fig3([first, second], store, tmp_path / "fig3.png", scene="h24")


def test_fig3_wrong_scene_run(tmp_path, store):
    path = _write_predictions(tmp_path, "spar", np.array([1.0, 0.0]), scene="i22")

    with pytest.raises(ValueError, match="from scene 'i22'"):
        plot_fig3([path], store, tmp_path / "fig3.png", scene="h24")
    assert not (tmp_path / "fig3.png").exists()


def test_fig3_missing_metrics_json(tmp_path, store):
    path = _write_predictions(tmp_path, "spar", np.array([1.0, 0.0]))
    (path.parent / "metrics.json").unlink()

    with pytest.raises(FileNotFoundError, match="metrics.json"):
        plot_fig3([path], store, tmp_path / "fig3.png", scene="h24")
