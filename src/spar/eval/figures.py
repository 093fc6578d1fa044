"""Paper figures, drawn with matplotlib's Agg canvas and saved atomically.

The figures are built on ``matplotlib.figure.Figure`` with an explicit Agg
canvas instead of ``pyplot``, so drawing needs no display, leaves the global
backend alone and keeps no figure alive after saving.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle
from matplotlib.ticker import MaxNLocator

from spar.eval.detection import Detections, match_detections
from spar.eval.metrics import localization_errors
from spar.features.store import open_store
from spar.files import atomic_path

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("sample", "time", "true_east", "true_north", "pred_east", "pred_north")


# --- inputs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodPredictions:
    """Test-set predictions of one method.

    ``true`` and ``pred`` have shape (sample, 2) with columns east and north,
    in the unit of the store's positions.
    """

    method: str
    path: Path
    true: np.ndarray
    pred: np.ndarray
    seed: int | None = None
    label_ratio: float | None = None


@dataclass(frozen=True)
class NodeLayout:
    """Sensor nodes of one scene: ``names`` (sensor ids such as ``rs1``) and ``positions`` (node, 2), east and north."""

    names: list[str]
    positions: np.ndarray
    unit: str


def _read_run_metrics(metrics_path: Path, data_path: Path, scene: str | None) -> dict:
    """Read the ``metrics.json`` of a run; it must name the method and, when ``scene`` is given, match it.

    ``data_path`` is the file whose labels come from it, for the error messages.
    """
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{metrics_path} is not valid JSON ({err}); rerun the fine-tuning step that wrote it") from err
    method = metrics.get("method") if isinstance(metrics, dict) else None
    if not isinstance(method, str) or not method:
        raise ValueError(f"{metrics_path} has no \"method\" string; it is needed to label the rows of {data_path}")
    if scene is not None and "scene" in metrics and str(metrics["scene"]) != scene:
        raise ValueError(f"{metrics_path} is from scene {metrics['scene']!r}, but the figure is for scene {scene!r}; pass runs of that scene")
    return metrics


def read_predictions(path: Path, scene: str | None = None) -> MethodPredictions:
    """Read a run's ``predictions.csv`` and take the method name from the ``metrics.json`` beside it.

    Raises:
        FileNotFoundError: the CSV or its ``metrics.json`` is missing.
        ValueError: a column is missing, or ``metrics.json`` names another scene than ``scene``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"predictions file {path} not found; run `spar finetune localization` to write it")
    metrics_path = path.with_name("metrics.json")
    if not metrics_path.exists():
        raise FileNotFoundError(f"{metrics_path} not found; the method name of {path} is read from the metrics.json beside it")

    metrics = _read_run_metrics(metrics_path, path, scene)
    method = metrics["method"]

    table = pd.read_csv(path)
    missing = [column for column in PREDICTION_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"predictions file {path} lacks the columns {missing}; it has {list(table.columns)}")
    true = table[["true_east", "true_north"]].to_numpy(dtype=float)
    pred = table[["pred_east", "pred_north"]].to_numpy(dtype=float)
    return MethodPredictions(method=method, path=path, true=true, pred=pred,
                             seed=metrics.get("seed"), label_ratio=metrics.get("label_ratio"))


def read_node_layout(store: Path, scene: str | None) -> NodeLayout:
    """Read the east and north positions of the nodes of ``scene`` (None: every window) from the tensor store.

    Nodes are static within a scene, so each node takes its position from the
    first window of the scene in which its slot is filled (``node_id`` >= 0).
    A node that moves by more than 1e-3 units between windows is logged.

    Raises:
        ValueError: the store has no samples whose ``group`` is ``scene``, or none of them has a node.
    """
    ds = open_store(store)
    # the store's strings may come back as numpy StringDType, which does not cast to '<U'
    groups = np.array([str(g) for g in ds["group"].values.tolist()], dtype=object)
    in_scene = np.arange(groups.size) if scene is None else np.flatnonzero(groups == scene)
    if in_scene.size == 0:
        raise ValueError(f"tensor store {store} has no samples of scene {scene!r}; its groups are {sorted(set(groups))}")

    node_id = ds["node_id"].values[in_scene]
    position = ds["position"].values[in_scene][..., :2].astype(float)
    node_name = [str(name) for name in ds["node_name"].values.tolist()]
    unit = str(ds.attrs["position_unit"])

    ids = []
    positions = []
    for global_id in np.unique(node_id[node_id >= 0]):
        rows, slots = np.nonzero(node_id == global_id)
        track = position[rows, slots]
        if np.nanmax(np.abs(track - track[0])) > 1e-3:
            log.warning("node %s moves within scene %s; plotting its first position", node_name[global_id], scene)
        ids.append(int(global_id))
        positions.append(track[0])
    if not ids:
        raise ValueError(f"tensor store {store} has no filled node slot (node_id >= 0) in scene {scene!r}")

    # "h24/rs1" -> "rs1": the scene is in the figure title already
    names = [node_name[i].split("/", 1)[-1] for i in ids]
    return NodeLayout(names=names, positions=np.asarray(positions), unit=unit)


# --- Figure 3 ------------------------------------------------------------------------------------------


def _common_limits(runs: list[MethodPredictions], layout: NodeLayout) -> tuple[tuple[float, float], tuple[float, float]]:
    points = np.concatenate([layout.positions] + [run.true for run in runs] + [run.pred for run in runs])
    low = points.min(axis=0)
    high = points.max(axis=0)
    margin = 0.05 * max(float((high - low).max()), 1.0)
    return (low[0] - margin, high[0] + margin), (low[1] - margin, high[1] + margin)


PANEL_WIDTH_IN = 4.2


def panel_height_in(aspect: float) -> float:
    """Return the height of one panel in inches for data of the given height/width ratio, axis labels included."""
    return 3.4 * aspect + 0.9


def _run_description(runs: list[MethodPredictions]) -> str:
    """Describe the seed and label ratio the runs share, such as 'seed 0, 100% of the training labels'."""
    seeds = {run.seed for run in runs}
    ratios = {run.label_ratio for run in runs}
    parts = []
    if len(seeds) == 1 and None not in seeds:
        parts.append(f"seed {seeds.pop()}")
    if len(ratios) == 1 and None not in ratios:
        parts.append(f"{100 * ratios.pop():.0f}% of the training labels")
    return ", ".join(parts) or "one run per method"


def _require_one_run_per_method(runs) -> None:
    """Raise ValueError when two runs (with ``method`` and ``path``) belong to the same method."""
    seen: dict[str, Path] = {}
    for run in runs:
        if run.method in seen:
            raise ValueError(f"method {run.method!r} has two predictions files, {seen[run.method]} and {run.path}; pass one per method")
        seen[run.method] = run.path


def plot_fig3(prediction_paths: list[Path], store: Path, out: Path, scene: str) -> None:
    """Draw Figure 3: single-vehicle location predictions against ground truth, one panel per method.

    Each panel shows the true positions (gray), the predictions (colored), a
    thin line from each true position to its prediction, and the sensor nodes
    as labeled triangles. All panels share the same axis limits and an equal
    aspect ratio, and the title gives the method and its mean distance error.

    Args:
        prediction_paths: ``predictions.csv`` of one run per method (seed 0,
            all labels); the method name comes from the ``metrics.json``
            beside each file.
        store: tensor store of the dataset, for the node positions.
        out: image path; the format follows its suffix (``.png`` by default).
        scene: group name of the scene in the store, such as ``h24``.
    """
    out = Path(out)
    if not prediction_paths:
        raise ValueError("no predictions files given; pass one predictions.csv per method")

    runs = [read_predictions(path, scene=scene) for path in prediction_paths]
    _require_one_run_per_method(runs)
    layout = read_node_layout(store, scene)

    # one panel per method, at most three per row, each panel as tall as the data's aspect needs
    n_cols = min(len(runs), 3)
    n_rows = -(-len(runs) // n_cols)
    xlim, ylim = _common_limits(runs, layout)
    aspect = (ylim[1] - ylim[0]) / (xlim[1] - xlim[0])
    fig = Figure(figsize=(PANEL_WIDTH_IN * n_cols, panel_height_in(aspect) * n_rows + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    # every panel shows one method, so colours may repeat, but never C7 (gray), the colour of the ground truth
    palette = [f"C{i}" for i in range(10) if i != 7]
    colors = [palette[i % len(palette)] for i in range(len(runs))]

    for ax, run, color in zip(axes, runs, colors):
        try:
            errors = localization_errors(run.pred, run.true)
        except ValueError as err:
            raise ValueError(f"predictions file {run.path}: {err}") from err

        pairs = np.stack([run.true, run.pred], axis=1)
        ax.add_collection(LineCollection(pairs, colors=color, linewidths=0.5, alpha=0.4, zorder=1))
        ax.scatter(run.true[:, 0], run.true[:, 1], s=10, c="0.55", label="ground truth", zorder=2)
        ax.scatter(run.pred[:, 0], run.pred[:, 1], s=10, c=color, label="prediction", zorder=3)
        ax.scatter(layout.positions[:, 0], layout.positions[:, 1], s=70, marker="^", c="black", label="sensor node", zorder=4)
        for name, (east, north) in zip(layout.names, layout.positions):
            ax.annotate(name, (east, north), xytext=(4, 4), textcoords="offset points", fontsize=8)

        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"east ({layout.unit})")
        ax.set_ylabel(f"north ({layout.unit})")
        ax.set_title(f"{run.method}: mean distance {errors['distance']:.2f} {layout.unit}", fontsize=10)
        ax.grid(True, linewidth=0.3)
        log.info("fig3 %s: %d predictions from %s, mean distance %.2f %s", run.method, len(run.true), run.path, errors["distance"], layout.unit)

    for ax in axes[len(runs):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    fig.suptitle(f"Single-vehicle localization, scene {scene}: test windows, {_run_description(runs)}", fontsize=11)

    with atomic_path(out, suffix=out.suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=150)
    log.info("wrote %s: %d methods, %d nodes", out, len(runs), len(layout.names))


# --- Figure 6: earthquake epicenters ---------------------------------------------------------------


def _read_localization_run(path: Path) -> tuple[str, pd.DataFrame, dict]:
    """Read a run's predictions.csv and metrics.json; return (method, predictions, metrics)."""
    path = Path(path)
    metrics_path = path.with_name("metrics.json")
    for required in (path, metrics_path):
        if not required.exists():
            raise FileNotFoundError(f"{required} not found; run the fine-tuning step that writes it")
    metrics = json.loads(metrics_path.read_text())
    return str(metrics["method"]), pd.read_csv(path), metrics


def plot_fig6(prediction_paths: list[Path], store: Path, out: Path) -> None:
    """Draw Figure 6: catalog vs predicted earthquake epicenters and the stations, one panel per method.

    Predictions are ENU kilometers relative to the store's ENU origin
    (``attrs['enu_origin']``). They are converted back to latitude and
    longitude with the same WGS84 frame, so the axes are geographic and no
    map tiles are needed.
    """
    from spar.io.geodesy import EnuFrame

    out = Path(out)
    if not prediction_paths:
        raise ValueError("no predictions files given; pass one predictions.csv per method")
    ds = open_store(store)
    origin = ds.attrs.get("enu_origin")
    if not isinstance(origin, dict) or "lat0_deg" not in origin:
        raise ValueError(f"tensor store {store} has no attrs['enu_origin'] with lat0_deg, lon0_deg, h0_m; re-ingest it")
    frame = EnuFrame(origin["lat0_deg"], origin["lon0_deg"], origin.get("h0_m", 0.0))
    scale = 1000.0 if ds.attrs.get("position_unit") == "km" else 1.0
    layout = read_node_layout(store, None)
    stations = frame.to_geodetic(layout.positions[:, 0] * scale, layout.positions[:, 1] * scale)

    runs = [_read_localization_run(path) for path in prediction_paths]
    n_cols = min(len(runs), 3)
    n_rows = -(-len(runs) // n_cols)
    fig = Figure(figsize=(4.6 * n_cols, 4.6 * n_rows + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, (method, table, metrics) in zip(axes, runs):
        true = frame.to_geodetic(table["true_east"].to_numpy() * scale, table["true_north"].to_numpy() * scale)
        pred = frame.to_geodetic(table["pred_east"].to_numpy() * scale, table["pred_north"].to_numpy() * scale)
        pairs = np.stack([true[:, [1, 0]], pred[:, [1, 0]]], axis=1)
        ax.add_collection(LineCollection(pairs, colors="C0", linewidths=0.4, alpha=0.35, zorder=1))
        ax.scatter(true[:, 1], true[:, 0], s=8, c="0.5", label="catalog epicenter", zorder=2)
        ax.scatter(pred[:, 1], pred[:, 0], s=8, c="C0", label="prediction", zorder=3)
        ax.scatter(stations[:, 1], stations[:, 0], s=60, marker="^", c="black", label="station", zorder=4)
        for name, (lat, lon) in zip(layout.names, stations[:, :2]):
            ax.annotate(name.split(".")[-1], (lon, lat), xytext=(3, 3), textcoords="offset points", fontsize=7)
        ax.set_aspect(1.0 / np.cos(np.radians(frame.lat0_deg)), adjustable="datalim")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
        distance = metrics.get("distance_km", float("nan"))
        ax.set_title(f"{method}: mean 3-D error {distance:.2f} km", fontsize=10)
        ax.grid(True, linewidth=0.3)
    for ax in axes[len(runs):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    seeds = {m.get("seed") for _, _, m in runs}
    fig.suptitle(f"Earthquake epicenters, validation events (seed {seeds.pop() if len(seeds) == 1 else 'various'})", fontsize=11)
    with atomic_path(out, suffix=out.suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=150)
    log.info("wrote %s: %d methods, %d stations", out, len(runs), len(layout.names))


# --- Figures 5 and 7: confusion matrices ----------------------------------------------------------


def plot_confusion_matrices(metrics_paths: list[Path], out: Path, title: str) -> None:
    """Draw one row-normalised confusion matrix per run (``confusion_matrix`` and ``class_name`` of metrics.json).

    Cells show the percentage of each true class (rows) predicted as each
    class (columns), with the count underneath.
    """
    out = Path(out)
    if not metrics_paths:
        raise ValueError("no metrics.json given; pass one classification run per method")
    runs = []
    for path in map(Path, metrics_paths):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found; run `spar finetune classification` to write it")
        metrics = json.loads(path.read_text())
        for key in ("confusion_matrix", "class_name", "method"):
            if key not in metrics:
                raise ValueError(f"{path} has no {key!r}; it is not the metrics of a classification run")
        runs.append(metrics)

    n_classes = len(runs[0]["class_name"])
    size = 0.45 * n_classes + 2.0
    # at most five matrices per row, so ten methods make two rows instead of one very wide figure
    n_cols = min(len(runs), 5)
    n_rows = -(-len(runs) // n_cols)
    fig = Figure(figsize=(size * n_cols, size * n_rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[len(runs):]:
        ax.set_visible(False)
    for ax, metrics in zip(axes, runs):
        counts = np.asarray(metrics["confusion_matrix"], dtype=float)
        names = list(metrics["class_name"])
        if counts.shape != (len(names), len(names)):
            raise ValueError(f"confusion matrix of {metrics['method']} has shape {counts.shape}, expected {len(names)} classes")
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        ax.imshow(share, vmin=0.0, vmax=1.0, cmap="Blues")
        for i in range(len(names)):
            for j in range(len(names)):
                color = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, f"{100 * share[i, j]:.0f}\n({int(counts[i, j])})", ha="center", va="center", fontsize=6, color=color)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{metrics['method']}: accuracy {100 * metrics['accuracy']:.1f}%, F1 {100 * metrics['macro_f1']:.1f}%", fontsize=9)
    fig.suptitle(title, fontsize=11)
    with atomic_path(out, suffix=out.suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=150)
    log.info("wrote %s: %d confusion matrices of %d classes", out, len(runs), n_classes)


# --- Figure 4: multi-vehicle detection ------------------------------------------------------------------

DETECTION_COLUMNS = ("sample", "time", "query", "class_index", "class", "confidence", "east", "north")
TRUTH_COLUMNS = ("sample", "time", "object", "class_index", "class", "east", "north")


@dataclass(frozen=True)
class MethodDetections:
    """Test-set detections of one method: ``predictions.csv``, ``ground_truth.csv`` and ``metrics.json`` of a run."""

    method: str
    path: Path
    predictions: pd.DataFrame
    truth: pd.DataFrame
    metrics: dict


def read_detections(path: Path, scene: str | None = None) -> MethodDetections:
    """Read a detection run's ``predictions.csv`` with the ``ground_truth.csv`` and ``metrics.json`` beside it.

    Raises:
        FileNotFoundError: one of the three files is missing.
        ValueError: a column is missing, or ``metrics.json`` is not from a
            detection run of ``scene``.
    """
    path = Path(path)
    truth_path = path.with_name("ground_truth.csv")
    metrics_path = path.with_name("metrics.json")
    for required in (path, truth_path, metrics_path):
        if not required.exists():
            raise FileNotFoundError(f"{required} not found; run `spar finetune detection --out-dir {path.parent}` to write it")

    metrics = _read_run_metrics(metrics_path, path, scene)
    if not any(key.startswith("map@") for key in metrics):
        raise ValueError(f"{metrics_path} has no map@<r> key; pass the predictions.csv of a `spar finetune detection` run")

    tables = {}
    for table_path, columns in ((path, DETECTION_COLUMNS), (truth_path, TRUTH_COLUMNS)):
        table = pd.read_csv(table_path)
        missing = [column for column in columns if column not in table.columns]
        if missing:
            raise ValueError(f"{table_path} lacks the columns {missing}; it has {list(table.columns)}")
        tables[table_path] = table
    return MethodDetections(method=metrics["method"], path=path, predictions=tables[path], truth=tables[truth_path], metrics=metrics)


def example_windows(runs: list[MethodDetections], count: int) -> list[int]:
    """Pick ``count`` test windows with vehicles that every run predicted, spread evenly over time.

    Returns the sample ids in time order, fewer than ``count`` when fewer windows qualify.
    """
    candidates = set(runs[0].truth["sample"].tolist())
    for run in runs:
        candidates &= set(run.predictions["sample"].tolist())
    if not candidates:
        raise ValueError(f"no test window of {runs[0].path} has a vehicle and predictions in every run; pass runs of the same embeddings")
    ordered = sorted(candidates)
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(count, len(ordered))).round().astype(int))
    return [ordered[i] for i in picks]


def _window_outcome(predictions: pd.DataFrame, truth: pd.DataFrame, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (whether each prediction is a true positive, whether each true vehicle was found) in one window."""
    detections = Detections.build(np.zeros(len(predictions)), predictions["class_index"], predictions[["east", "north"]],
                                  predictions["confidence"], name="predictions")
    vehicles = Detections.build(np.zeros(len(truth)), truth["class_index"], truth[["east", "north"]], name="ground truth")
    matched = match_detections(detections, vehicles, radius)
    found = np.zeros(len(truth), dtype=bool)
    found[matched[matched >= 0]] = True
    return matched >= 0, found


def plot_fig4(prediction_paths: list[Path], store: Path, out: Path, scene: str, n_windows: int = 4,
              threshold: float = 0.5, radius: float = 4.0) -> None:
    """Draw Figure 4: detections of example test windows, one row per method and one column per window.

    Each panel shows the sensor nodes (triangles), the true vehicles (stars,
    colored by class) with a circle of ``radius`` metres around each, and the
    predictions whose confidence is at least ``threshold``. A true positive
    (filled circle) has the right class and lies within ``radius`` of a
    vehicle that no more confident prediction took. Every other prediction is
    a false positive (cross), and a vehicle that no prediction found is a
    false negative (square around its star). This is the matching of mAP@r,
    applied to the predictions above the threshold.

    Args:
        prediction_paths: ``predictions.csv`` of one detection run per method;
            ``ground_truth.csv`` and ``metrics.json`` must lie beside each.
        store: tensor store of the dataset, for the node positions.
        out: image path; the format follows its suffix (``.png`` by default).
        scene: group name of the scene in the store, such as ``i22``.
        n_windows: number of example windows (columns).
        threshold: minimum confidence of a drawn prediction, in [0, 1].
        radius: matching radius in metres.
    """
    out = Path(out)
    if not prediction_paths:
        raise ValueError("no predictions files given; pass one predictions.csv of a detection run per method")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"confidence threshold {threshold} is outside [0, 1]")
    if n_windows < 1:
        raise ValueError(f"n_windows is {n_windows}; draw at least one window")

    runs = [read_detections(path, scene=scene) for path in prediction_paths]
    _require_one_run_per_method(runs)
    layout = read_node_layout(store, scene)
    samples = example_windows(runs, n_windows)
    drawn_predictions = [run.predictions[(run.predictions["sample"].isin(samples)) & (run.predictions["confidence"] >= threshold)] for run in runs]
    truth = runs[0].truth[runs[0].truth["sample"].isin(samples)]
    class_names = sorted(set(truth["class"]).union(*(set(table["class"]) for table in drawn_predictions)))
    color = {name: f"C{i % 10}" for i, name in enumerate(class_names)}

    # shared limits: nodes, vehicles with their circles, and the drawn predictions
    points = [layout.positions, truth[["east", "north"]].to_numpy() + radius, truth[["east", "north"]].to_numpy() - radius]
    points += [table[["east", "north"]].to_numpy() for table in drawn_predictions]
    points = np.concatenate(points)
    low, high = points.min(axis=0), points.max(axis=0)
    margin = 0.05 * max(float((high - low).max()), 1.0)

    n_rows, n_cols = len(runs), len(samples)
    fig = Figure(figsize=(3.2 * n_cols, 3.2 * n_rows + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for row, (run, predictions) in enumerate(zip(runs, drawn_predictions)):
        for col, sample in enumerate(samples):
            ax = axes[row, col]
            window_truth = run.truth[run.truth["sample"] == sample]
            window_pred = predictions[predictions["sample"] == sample].sort_values("confidence", ascending=False)
            hit, found = _window_outcome(window_pred, window_truth, radius)

            ax.scatter(layout.positions[:, 0], layout.positions[:, 1], s=30, marker="^", c="black", zorder=2)
            for name, east, north, is_found in zip(window_truth["class"], window_truth["east"], window_truth["north"], found):
                ax.add_patch(Circle((east, north), radius, fill=False, linestyle="--", linewidth=0.8, edgecolor=color[name], zorder=6))
                ax.scatter([east], [north], s=140, marker="*", c=color[name], edgecolors="black", linewidths=0.5, zorder=3)
                if not is_found:
                    ax.scatter([east], [north], s=420, marker="s", facecolors="none", edgecolors="red", linewidths=1.2, zorder=4)
            for name, east, north, is_hit in zip(window_pred["class"], window_pred["east"], window_pred["north"], hit):
                marker, size = ("o", 40) if is_hit else ("X", 50)
                ax.scatter([east], [north], s=size, marker=marker, c=color[name], edgecolors="black", linewidths=0.5, zorder=5)

            ax.set_xlim(low[0] - margin, high[0] + margin)
            ax.set_ylim(low[1] - margin, high[1] + margin)
            ax.set_aspect("equal", adjustable="box")
            ax.grid(True, linewidth=0.3)
            ax.tick_params(labelsize=7)
            time = str(window_truth["time"].iloc[0])[11:19]
            ax.set_title(f"{run.method}, {time}: TP {int(hit.sum())}, FP {int((~hit).sum())}, FN {int((~found).sum())}", fontsize=8)
            if row == n_rows - 1:
                ax.set_xlabel(f"east ({layout.unit})", fontsize=8)
            if col == 0:
                ax.set_ylabel(f"north ({layout.unit})", fontsize=8)
        log.info("fig4 %s: windows %s from %s", run.method, samples, run.path)

    handles = [
        Line2D([], [], linestyle="none", marker="^", color="black", label="sensor node"),
        Line2D([], [], linestyle="none", marker="*", markersize=11, color="0.6", markeredgecolor="black", label="true vehicle"),
        Line2D([], [], linestyle="--", color="0.4", label=f"r = {radius:g} {layout.unit}"),
        Line2D([], [], linestyle="none", marker="o", color="0.6", markeredgecolor="black", label="true positive"),
        Line2D([], [], linestyle="none", marker="X", color="0.6", markeredgecolor="black", label="false positive"),
        Line2D([], [], linestyle="none", marker="s", markersize=11, markerfacecolor="none", markeredgecolor="red", label="false negative"),
    ]
    handles += [Line2D([], [], linestyle="none", marker="s", color=color[name], label=name) for name in class_names]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8, frameon=False)
    fig.suptitle(f"Multi-vehicle detection, scene {scene}: predictions with confidence >= {threshold:g}, "
                 f"matched within {radius:g} {layout.unit}", fontsize=10)

    with atomic_path(out, suffix=out.suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=150)
    log.info("wrote %s: %d methods x %d windows", out, n_rows, n_cols)
