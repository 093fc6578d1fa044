"""Paper tables: per-run ``metrics.json`` files aggregated over seeds into CSV and Markdown.

Every fine-tuning run writes one small JSON file with its settings (method,
seed, label ratio, ...) and its scores. A table groups the runs by the
settings of a cell, takes the mean and the sample standard deviation over
seeds, and writes a CSV for machines and a Markdown twin for reading.

The generic steps (reading runs, grouping with a duplicate check, mean and
std over seeds, Markdown with the best value in bold) are separate functions,
so that every table writer is a short description of its rows and columns.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

import numpy as np

from spar.files import write_text

log = logging.getLogger(__name__)


# --- reading and grouping runs ------------------------------------------------------------------


@dataclass(frozen=True)
class RunMetrics:
    """One run's ``metrics.json``: its parsed content and the file it came from."""

    path: Path
    values: Mapping[str, object]


def read_run_metrics(paths: Iterable[Path], required: Sequence[str] = ()) -> list[RunMetrics]:
    """Read ``metrics.json`` files and check that each has the ``required`` keys.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a file is not a JSON object or lacks a required key.
    """
    runs = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"metrics file {path} not found; run the fine-tuning step that writes it")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"metrics file {path} is not valid JSON ({err}); delete it and rerun the run that wrote it") from err
        if not isinstance(values, dict):
            raise ValueError(f"metrics file {path} contains a JSON {type(values).__name__}; expected an object")
        missing = [key for key in required if key not in values]
        if missing:
            raise ValueError(f"metrics file {path} lacks the keys {missing}; it has {sorted(values)}")
        runs.append(RunMetrics(path=path, values=values))
    return runs


def _cell_value(value):
    # JSON floats such as a label ratio of 0.2 compare equal after rounding, so a
    # ratio computed as 12 / 60 in one run matches the 0.2 given on the command line.
    if isinstance(value, float):
        return round(value, 9)
    return value


def group_runs(runs: Iterable[RunMetrics], keys: Sequence[str], seed_key: str = "seed") -> dict[tuple, list[RunMetrics]]:
    """Group runs by the values of ``keys``, one group per table cell.

    Floats in the keys are rounded to 9 decimals. Within a group every seed
    occurs once.

    Raises:
        ValueError: two runs share the same ``keys`` and seed; the message
        names both files.
    """
    groups: dict[tuple, list[RunMetrics]] = {}
    seen: dict[tuple, Path] = {}
    for run in runs:
        cell = tuple(_cell_value(run.values[key]) for key in keys)
        identity = cell + (run.values[seed_key],)
        if identity in seen:
            settings = ", ".join(f"{key}={run.values[key]!r}" for key in (*keys, seed_key))
            raise ValueError(
                f"duplicate run ({settings}) in {seen[identity]} and {run.path}; "
                "pass each run's metrics.json once, or remove the stale copy"
            )
        seen[identity] = run.path
        groups.setdefault(cell, []).append(run)
    return groups


# --- mean and std over seeds ----------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSummary:
    """Mean and sample standard deviation (ddof=1) of one metric over seeds.

    With a single seed ``std`` is 0.0, not NaN, and ``n_seeds`` distinguishes
    that case from seeds that agree exactly.
    """

    mean: float
    std: float
    n_seeds: int


def summarize_seeds(values: Sequence[float]) -> SeedSummary:
    """Return the mean and sample standard deviation (ddof=1) of per-seed values.

    Raises:
        ValueError: no values, or a NaN or infinite value.
    """
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("no values to summarize; a table cell needs at least one seed")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"non-finite metric values {array.tolist()}; a run diverged or wrote a broken metrics.json")
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return SeedSummary(mean=float(array.mean()), std=std, n_seeds=int(array.size))


def summarize_group(runs: Sequence[RunMetrics], metric_keys: Sequence[str]) -> dict[str, SeedSummary]:
    """Summarize each of ``metric_keys`` over the runs (seeds) of one table cell."""
    summaries = {}
    for key in metric_keys:
        values = []
        for run in runs:
            value = run.values.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"metrics file {run.path} has {key}={value!r}; expected a finite number")
            values.append(float(value))
        summaries[key] = summarize_seeds(values)
    return summaries


# --- output ------------------------------------------------------------------------------------


def format_label_ratio(ratio: float) -> str:
    """Format a ratio for a CSV column name: 1.0 -> ``1.0``, 0.5 -> ``0.5``, 0.05 -> ``0.05``."""
    return repr(float(ratio))


def format_percent(ratio: float) -> str:
    """Format a ratio as a percentage for a Markdown header: 1.0 -> ``100%``, 0.05 -> ``5%``."""
    return f"{float(ratio) * 100:g}%"


def format_mean_std(summary: SeedSummary, digits: int = 2) -> str:
    """Format a summary as ``12.98 ± 0.41``, or ``12.98`` when it comes from a single seed."""
    if summary.n_seeds == 1:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f} ± {summary.std:.{digits}f}"


def render_csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as CSV text, with floats at full precision."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([repr(value) if isinstance(value, float) else value for value in row])
    return buffer.getvalue()


@dataclass(frozen=True)
class MarkdownColumn:
    """A Markdown table column: its header and whether the lowest or highest mean is best."""

    header: str
    better: Literal["lower", "higher"] | None = "lower"


def render_markdown_table(
    title: str,
    note: str,
    row_header: str,
    row_labels: Sequence[str],
    columns: Sequence[MarkdownColumn],
    cells: Sequence[Sequence[SeedSummary]],
    digits: int = 2,
) -> str:
    """Render a table of ``mean ± std`` cells as Markdown, with the best mean of each column in bold.

    The best mean is chosen on the rounded values that the table shows, so
    rows that tie at ``digits`` decimals are all bold. A cell whose seed
    count differs from the largest in the table gets ``(n=k)`` appended.

    Args:
        title: first line, without the leading ``#``.
        note: paragraph under the title that defines the numbers.
        row_header: header of the label column, such as ``Method``.
        row_labels: one label per row.
        columns: one entry per value column.
        cells: ``cells[row][column]``, same sizes as ``row_labels`` and ``columns``.
        digits: decimals shown for the mean and the std.
    """
    if len(cells) != len(row_labels) or any(len(row) != len(columns) for row in cells):
        raise ValueError(f"cells must have {len(row_labels)} rows of {len(columns)} columns")

    max_seeds = max((cell.n_seeds for row in cells for cell in row), default=0)
    best = []
    for j, column in enumerate(columns):
        displayed_means = [round(row[j].mean, digits) for row in cells]
        if column.better is None or not displayed_means:
            best.append(None)
        elif column.better == "lower":
            best.append(min(displayed_means))
        else:
            best.append(max(displayed_means))

    lines = [f"# {title}", "", note, ""]
    lines.append("| " + " | ".join([row_header, *(column.header for column in columns)]) + " |")
    lines.append("| " + " | ".join(["---"] + ["---:"] * len(columns)) + " |")
    for label, row in zip(row_labels, cells):
        texts = []
        for j, cell in enumerate(row):
            text = format_mean_std(cell, digits)
            if best[j] is not None and round(cell.mean, digits) == best[j]:
                text = f"**{text}**"
            if cell.n_seeds != max_seeds:
                text += f" (n={cell.n_seeds})"
            texts.append(text)
        lines.append("| " + " | ".join([label, *texts]) + " |")
    return "\n".join(lines) + "\n"


# --- Table 1: single-vehicle localization ----------------------------------------------------------

TABLE1_METRICS = (("mse_m2", "MSE (m²)"), ("distance_m", "Dist. (m)"))


def table1_columns(label_ratios: Sequence[float]) -> list[str]:
    """Return the CSV header of Table 1 for the given label ratios, in order."""
    header = ["method"]
    for ratio in label_ratios:
        r = format_label_ratio(ratio)
        header += [f"mse_m2_mean@{r}", f"mse_m2_std@{r}", f"distance_m_mean@{r}", f"distance_m_std@{r}", f"n_seeds@{r}"]
    return header


def _check_single_value(runs: Sequence[RunMetrics], key: str) -> None:
    # Mixing scenes or tasks in one table is a wiring mistake in the workflow, not a result.
    by_value: dict[object, Path] = {}
    for run in runs:
        if key in run.values:
            by_value.setdefault(run.values[key], run.path)
    if len(by_value) > 1:
        examples = ", ".join(f"{value!r} in {path}" for value, path in by_value.items())
        raise ValueError(f"the runs of one table have different {key} values ({examples}); pass runs of one {key} only")


def write_table1(metrics_paths: list[Path], out: Path, methods: list[str], label_ratios: list[float]) -> None:
    """Write Table 1 (single-vehicle localization) as CSV at ``out`` and Markdown beside it.

    Rows follow ``methods``. For each ratio of ``label_ratios`` the columns
    are the mean and std over seeds of ``mse_m2`` (m^2) and ``distance_m`` (m),
    then the seed count. The std is the sample std (ddof=1), and 0.0 for a
    single seed.

    Args:
        metrics_paths: ``metrics.json`` of every run; runs of methods or ratios
            not requested are ignored with a log line.
        out: CSV path; the Markdown twin is ``out.with_suffix('.md')``.
        methods: table rows, in order.
        label_ratios: fractions of the fine-tuning labels, one column group each, in order.

    Raises:
        ValueError: a requested method or ratio has no run, two runs share
            method, ratio and seed, or the runs mix tasks or scenes.
    """
    out = Path(out)
    if not methods or not label_ratios:
        raise ValueError(f"table 1 needs at least one method and one label ratio; got methods={methods}, label_ratios={label_ratios}")
    for name, values in (("methods", list(methods)), ("label_ratios", [float(r) for r in label_ratios])):
        if len(set(values)) != len(values):
            raise ValueError(f"{name} {values} lists a value twice; give each row or column once")
    runs = read_run_metrics(metrics_paths, required=("method", "seed", "label_ratio", "mse_m2", "distance_m"))
    _check_single_value(runs, "task")
    _check_single_value(runs, "scene")
    for run in runs:
        ratio = run.values["label_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
            raise ValueError(f"metrics file {run.path} has label_ratio={ratio!r}; expected a number such as 0.5")
    groups = group_runs(runs, keys=("method", "label_ratio"))

    # every requested method and ratio must have runs
    have_methods = sorted({str(run.values["method"]) for run in runs})
    have_ratios = sorted({float(run.values["label_ratio"]) for run in runs})
    for method in methods:
        if method not in have_methods:
            raise ValueError(
                f"no run of method {method!r} among the {len(runs)} metrics files (methods found: {have_methods}); "
                f"expected DIR/metrics.json with \"method\": {method!r} from `spar finetune localization --out-dir DIR` "
                "for every seed and label ratio"
            )
    for ratio in label_ratios:
        if not any((method, _cell_value(float(ratio))) in groups for method in methods):
            raise ValueError(
                f"no run with label ratio {ratio} among the {len(runs)} metrics files (ratios found: {have_ratios}); "
                f"expected DIR/metrics.json from `spar finetune localization --label-ratio {ratio} --out-dir DIR`"
            )

    # aggregate each (method, ratio) cell
    summaries: dict[tuple, dict[str, SeedSummary]] = {}
    for method in methods:
        for ratio in label_ratios:
            cell_runs = groups.get((method, _cell_value(float(ratio))))
            if not cell_runs:
                raise ValueError(
                    f"no run of method {method!r} with label ratio {ratio}; expected DIR/metrics.json from "
                    f"`spar finetune localization --label-ratio {ratio} --out-dir DIR` on {method!r} embeddings"
                )
            summaries[(method, ratio)] = summarize_group(cell_runs, [key for key, _ in TABLE1_METRICS])

    requested = {(method, _cell_value(float(ratio))) for method in methods for ratio in label_ratios}
    ignored = sum(len(cell_runs) for cell, cell_runs in groups.items() if cell not in requested)
    if ignored:
        log.info("ignored %d runs whose method or label ratio is not a column of table 1", ignored)

    # CSV
    rows = []
    for method in methods:
        row: list[object] = [method]
        for ratio in label_ratios:
            mse = summaries[(method, ratio)]["mse_m2"]
            distance = summaries[(method, ratio)]["distance_m"]
            row += [mse.mean, mse.std, distance.mean, distance.std, mse.n_seeds]
        rows.append(row)
    write_text(out, render_csv(table1_columns(label_ratios), rows))

    # Markdown
    columns = []
    cells: list[list[SeedSummary]] = [[] for _ in methods]
    for ratio in label_ratios:
        for key, header in TABLE1_METRICS:
            columns.append(MarkdownColumn(f"{header} @{format_percent(ratio)}", better="lower"))
            for i, method in enumerate(methods):
                cells[i].append(summaries[(method, ratio)][key])
    scenes = sorted({str(run.values["scene"]) for run in runs if "scene" in run.values})
    scene_text = f" on scene {scenes[0]}" if scenes else ""
    percents = [format_percent(ratio) for ratio in label_ratios]
    fractions = percents[0] if len(percents) == 1 else ", ".join(percents[:-1]) + " or " + percents[-1]
    note = (
        f"Single-vehicle localization{scene_text} with a frozen encoder, fine-tuned on {fractions} of the labels. "
        "Each cell is the mean ± sample std (ddof=1) over seeds; a cell from a single seed shows its value alone. "
        "MSE (m²) is the mean over test windows of the squared Euclidean error, and Dist. (m) is the mean "
        "Euclidean distance error. Lower is better, and the best mean of each column is in bold."
    )
    markdown = render_markdown_table(
        title="Table 1: single-vehicle localization",
        note=note,
        row_header="Method",
        row_labels=methods,
        columns=columns,
        cells=cells,
    )
    markdown_path = out.with_suffix(".md")
    write_text(markdown_path, markdown)
    log.info("wrote %s and %s: %d methods x %d label ratios from %d runs", out, markdown_path, len(methods), len(label_ratios), len(runs))


# --- Table 3: earthquake localization (Ridgecrest) and activity recognition (RealWorld-HAR) ----------

# (half, metric key in metrics.json, CSV stem, Markdown header, better, scale for display)
TABLE3_METRICS = (
    ("ridgecrest", "mse_km2", "ridgecrest_mse_km2", "Ridgecrest MSE (km²)", "lower", 1.0),
    ("ridgecrest", "distance_km", "ridgecrest_distance_km", "Ridgecrest Dist. (km)", "lower", 1.0),
    ("har", "accuracy", "har_accuracy", "HAR Acc. (%)", "higher", 100.0),
    ("har", "macro_f1", "har_macro_f1", "HAR F1 (%)", "higher", 100.0),
)


def write_table3(ridgecrest_paths: list[Path], har_paths: list[Path], out: Path, methods: list[str]) -> None:
    """Write Table 3 as CSV at ``out`` and Markdown beside it: one half per dataset that has runs.

    The Ridgecrest half has MSE (km^2) and mean 3-D distance error (km) of
    earthquake localization. The HAR half has accuracy and macro F1 of
    activity recognition, as fractions in the CSV and percentages in Markdown.
    Each cell is the mean and sample std over seeds of the runs with all
    fine-tuning labels.

    Raises:
        ValueError: neither half has runs, or a method has no run in a half that has runs.
    """
    out = Path(out)
    halves = {"ridgecrest": list(ridgecrest_paths), "har": list(har_paths)}
    halves = {name: paths for name, paths in halves.items() if paths}
    if not halves:
        raise ValueError("table 3 needs the metrics.json of Ridgecrest or HAR runs; none were given")

    summaries: dict[tuple[str, str], dict[str, SeedSummary]] = {}
    for half, paths in halves.items():
        keys = [key for name, key, *_ in TABLE3_METRICS if name == half]
        runs = read_run_metrics(paths, required=("method", "seed", *keys))
        _check_single_value(runs, "task")
        groups = group_runs(runs, keys=("method",))
        for method in methods:
            if (method,) not in groups:
                found = sorted({str(run.values["method"]) for run in runs})
                raise ValueError(f"no {half} run of method {method!r} among {len(runs)} metrics files (methods found: {found})")
            summaries[(half, method)] = summarize_group(groups[(method,)], keys)

    # CSV: fractions and km as measured
    header = ["method"]
    specs = [spec for spec in TABLE3_METRICS if spec[0] in halves]
    for half in halves:
        for _, _, stem, *_ in (spec for spec in specs if spec[0] == half):
            header += [f"{stem}_mean", f"{stem}_std"]
        header.append(f"{half}_n_seeds")
    rows = []
    for method in methods:
        row: list[object] = [method]
        for half in halves:
            for _, key, *_ in (spec for spec in specs if spec[0] == half):
                summary = summaries[(half, method)][key]
                row += [summary.mean, summary.std]
            row.append(next(iter(summaries[(half, method)].values())).n_seeds)
        rows.append(row)
    write_text(out, render_csv(header, rows))

    # Markdown: percentages for the HAR half
    columns = [MarkdownColumn(spec[3], better=spec[4]) for spec in specs]
    cells = []
    for method in methods:
        row_cells = []
        for half, key, _, _, _, scale in specs:
            s = summaries[(half, method)][key]
            row_cells.append(SeedSummary(mean=s.mean * scale, std=s.std * scale, n_seeds=s.n_seeds))
        cells.append(row_cells)
    note = (
        "Frozen encoders with all fine-tuning labels. Ridgecrest: earthquake localization with a two-layer transformer "
        "head; MSE (km²) is the mean squared 3-D hypocenter error and Dist. (km) the mean 3-D distance error, on the "
        "validation years. HAR: activity recognition with a linear head; accuracy and macro F1 on the validation "
        "subjects. Each cell is the mean ± sample std (ddof=1) over seeds, or the value alone for a single seed, "
        "and the best mean of each column is in bold."
    )
    write_text(out.with_suffix(".md"), render_markdown_table(
        title="Table 3: earthquake localization and activity recognition",
        note=note, row_header="Method", row_labels=methods, columns=columns, cells=cells,
    ))
    log.info("wrote %s and %s: %d methods, halves %s", out, out.with_suffix(".md"), len(methods), list(halves))


# --- Table 2: multi-vehicle joint classification and localization --------------------------------------

TABLE2_RADII_M = (4.0, 6.0, 8.0, 10.0)


def map_key(radius: float) -> str:
    """Return the metrics.json key of mAP at ``radius`` metres: 4.0 -> ``map@4``, 2.5 -> ``map@2.5``."""
    return f"map@{float(radius):g}"


def table2_columns(radii: Sequence[float]) -> list[str]:
    """Return the CSV header of Table 2 for the given radii (m), in order."""
    header = ["method"]
    for radius in radii:
        header += [f"map_pct_mean@{float(radius):g}m", f"map_pct_std@{float(radius):g}m"]
    return header + ["n_seeds"]


def write_table2(metrics_paths: list[Path], out: Path, methods: list[str], radii: Sequence[float] = TABLE2_RADII_M) -> None:
    """Write Table 2 (multi-vehicle detection, mAP@r) as CSV at ``out`` and Markdown beside it.

    Rows follow ``methods``. For each radius r (m) the columns are the mean
    and sample std (ddof=1, 0.0 for a single seed) over seeds of ``map@r``,
    in percent in both files, then the seed count.

    Args:
        metrics_paths: ``metrics.json`` of every run of ``spar finetune detection``;
            runs of methods not requested are ignored with a log line.
        out: CSV path; the Markdown twin is ``out.with_suffix('.md')``.
        methods: table rows, in order.
        radii: matching radii in metres, one column group each, in order.

    Raises:
        ValueError: a method has no run, a run lacks ``map@r`` for a radius,
            two runs share method and seed, or the runs mix tasks, scenes or
            label ratios.
    """
    out = Path(out)
    radii = [float(r) for r in radii]
    if not methods or not radii:
        raise ValueError(f"table 2 needs at least one method and one radius; got methods={methods}, radii={radii}")
    for name, values in (("methods", list(methods)), ("radii", radii)):
        if len(set(values)) != len(values):
            raise ValueError(f"{name} {values} lists a value twice; give each row or column once")
    keys = [map_key(r) for r in radii]
    runs = read_run_metrics(metrics_paths, required=("method", "seed", *keys))
    for key in ("task", "scene", "label_ratio"):
        _check_single_value(runs, key)
    groups = group_runs(runs, keys=("method",))

    summaries: dict[str, dict[str, SeedSummary]] = {}
    for method in methods:
        if (method,) not in groups:
            found = sorted({str(run.values["method"]) for run in runs})
            raise ValueError(
                f"no run of method {method!r} among the {len(runs)} metrics files (methods found: {found}); "
                f"expected DIR/metrics.json with \"method\": {method!r} from `spar finetune detection --out-dir DIR`"
            )
        summaries[method] = summarize_group(groups[(method,)], keys)
    ignored = sum(len(cell_runs) for (method,), cell_runs in groups.items() if method not in methods)
    if ignored:
        log.info("ignored %d runs whose method is not a row of table 2", ignored)

    # CSV in percent
    rows = []
    for method in methods:
        row: list[object] = [method]
        for key in keys:
            summary = summaries[method][key]
            row += [100.0 * summary.mean, 100.0 * summary.std]
        row.append(summaries[method][keys[0]].n_seeds)
        rows.append(row)
    write_text(out, render_csv(table2_columns(radii), rows))

    # Markdown in percent, higher is better
    columns = [MarkdownColumn(f"mAP@{r:g} m (%)", better="higher") for r in radii]
    cells = []
    for method in methods:
        cells.append([
            SeedSummary(mean=100.0 * s.mean, std=100.0 * s.std, n_seeds=s.n_seeds)
            for s in (summaries[method][key] for key in keys)
        ])
    scenes = sorted({str(run.values["scene"]) for run in runs if "scene" in run.values})
    scene_text = f" on scene {scenes[0]}" if scenes else ""
    note = (
        f"Multi-vehicle joint classification and localization{scene_text} with a frozen encoder and a set-prediction "
        "head. mAP@r is the mean over vehicle classes with test objects of the average precision, where a prediction "
        "counts as correct when its class is right and it lies within r metres of a not yet matched vehicle of that "
        "class in the same window. Each cell is the mean ± sample std (ddof=1) over seeds in percent, or the value "
        "alone for a single seed. Higher is better, and the best mean of each column is in bold."
    )
    markdown_path = out.with_suffix(".md")
    write_text(markdown_path, render_markdown_table(
        title="Table 2: multi-vehicle classification and localization",
        note=note, row_header="Method", row_labels=methods, columns=columns, cells=cells,
    ))
    log.info("wrote %s and %s: %d methods x %d radii from %d runs", out, markdown_path, len(methods), len(radii), len(runs))
