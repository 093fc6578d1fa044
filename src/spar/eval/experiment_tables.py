"""Tables 5 to 8: rows of runs named by the workflow, optional column groups, mean ± std over seeds.

Each row is a list of ``metrics.json`` files that the caller names (a method,
an ablation, a placement mode), so the grouping lives in the workflow and a
run need not carry the row's name. Within a row, runs may be split into
column groups by one field of their ``metrics.json`` (the message drop
probability of Table 6). Every other table of this module has one group.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from spar.eval.tables import (
    MarkdownColumn,
    SeedSummary,
    _cell_value,
    _check_single_value,
    format_label_ratio,
    format_percent,
    group_runs,
    read_run_metrics,
    render_csv,
    render_markdown_table,
    summarize_group,
)
from spar.files import write_json, write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricColumn:
    """A metric of ``metrics.json``: its key, Markdown header, direction and display scale (100 for percentages)."""

    key: str
    header: str
    better: Literal["lower", "higher"]
    scale: float = 1.0


@dataclass(frozen=True)
class TableSpec:
    """Layout of one table: its title, the note under it, its metrics and the optional column field."""

    title: str
    note: str
    row_header: str
    metrics: tuple[MetricColumn, ...]
    column_key: str | None = None  # field of metrics.json that splits a row into column groups
    column_header: str = ""  # Markdown header prefix of a column group, such as "drop"


LOCALIZATION_METRICS = (
    MetricColumn("mse_m2", "MSE (m²)", "lower"),
    MetricColumn("distance_m", "Dist. (m)", "lower"),
)
CLASSIFICATION_METRICS = (
    MetricColumn("accuracy", "Acc. (%)", "higher", 100.0),
    MetricColumn("macro_f1", "F1 (%)", "higher", 100.0),
)
_SEEDS_NOTE = ("Each cell is the mean ± sample std (ddof=1) over seeds, or the value alone for a single seed, "
               "and the best mean of each column is in bold.")

TABLES: dict[str, TableSpec] = {
    "table5": TableSpec(
        title="Table 5: single-vehicle classification",
        note=("Vehicle classification (four vehicle classes and background) with a frozen encoder and a linear head "
              "trained with cross-entropy on all fine-tuning labels. Accuracy and macro F1 on the test windows. " + _SEEDS_NOTE),
        row_header="Method",
        metrics=CLASSIFICATION_METRICS,
    ),
    "table6": TableSpec(
        title="Table 6: single-vehicle localization under message drop",
        note=("Each node's message (all modalities of one window) is lost independently with the drop probability, "
              "at fine-tuning and at test; a lost message is zeroed and marked missing. Frozen encoder, all fine-tuning "
              "labels. MSE (m²) is the mean squared Euclidean error and Dist. (m) the mean distance error; lower is better. "
              + _SEEDS_NOTE),
        row_header="Method",
        metrics=LOCALIZATION_METRICS,
        column_key="drop_prob",
        column_header="drop",
    ),
    "table7": TableSpec(
        title="Table 7: single-vehicle localization on an unseen placement",
        note=("Encoders pretrained without the scenes of the test placement and its twin, then frozen; the head is "
              "fine-tuned and tested on the unseen placement. \"random\": each new node gets the structural position "
              "of a node drawn at random from those learned in pretraining. \"fitted\": starting from that draw, only "
              "the new nodes' structural positions are fitted to the pretraining loss on the new placement's unlabeled "
              "training windows, with everything else frozen. Methods without structural positions have one row. "
              "Lower is better. " + _SEEDS_NOTE),
        row_header="Method",
        metrics=LOCALIZATION_METRICS,
    ),
    "table8": TableSpec(
        title="Table 8: ablations and masking strategies of SPAR",
        note=("Single-vehicle localization with a frozen encoder and all fine-tuning labels. Each row pretrains SPAR "
              "with one setting of params.yaml changed, named in the first column. Lower is better. " + _SEEDS_NOTE),
        row_header="Variant",
        metrics=LOCALIZATION_METRICS,
    ),
}


def _columns_of(runs, spec: TableSpec, columns: Sequence[float] | None) -> list:
    """Return the column values of a table: the requested ones, or [None] for a table without column groups."""
    if spec.column_key is None:
        if columns:
            raise ValueError(f"{spec.title} has no column groups; got columns {list(columns)}")
        return [None]
    if not columns:
        raise ValueError(f"{spec.title} needs the {spec.column_key} values of its column groups; pass them with --columns")
    for run in runs:
        if spec.column_key not in run.values:
            raise ValueError(f"metrics file {run.path} lacks {spec.column_key!r}, which splits the columns of {spec.title}")
    return [float(c) for c in columns]


def write_experiment_table(
    name: str,
    rows: Sequence[tuple[str, Sequence[Path]]],
    out: Path,
    columns: Sequence[float] | None = None,
    row_titles: dict[str, str] | None = None,
    summary: Path | None = None,
) -> None:
    """Write table ``name`` of :data:`TABLES` as CSV at ``out`` and Markdown beside it.

    Args:
        name: key of :data:`TABLES`.
        rows: (row name, metrics.json paths) in table order; each row needs a
            run for every column group.
        out: CSV path; the Markdown twin is ``out.with_suffix('.md')``.
        columns: values of the table's column field, in order (Table 6: drop probabilities).
        row_titles: Markdown label of a row name, where it should differ from the name.
        summary: optional JSON of the mean of each cell, for ``dvc metrics``.

    Raises:
        ValueError: an unknown table, a row without runs, a row name given
            twice, two runs with the same seed in one cell, or runs of
            different tasks or scenes.
    """
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; known tables: {sorted(TABLES)}")
    spec = TABLES[name]
    out = Path(out)
    names = [row for row, _ in rows]
    if not rows or len(set(names)) != len(names):
        raise ValueError(f"{spec.title} needs rows with distinct names; got {names}")
    keys = [metric.key for metric in spec.metrics]

    # read every row's runs and split them into column groups
    all_runs = []
    cells: dict[tuple[str, object], dict[str, SeedSummary]] = {}
    for row, paths in rows:
        if not paths:
            raise ValueError(f"row {row!r} of {spec.title} has no metrics files")
        runs = read_run_metrics(paths, required=("seed", *keys))
        all_runs += runs
        column_values = _columns_of(runs, spec, columns)
        group_keys = (spec.column_key,) if spec.column_key else ()
        groups = group_runs(runs, keys=group_keys)
        for column in column_values:
            cell = (_cell_value(column),) if spec.column_key else ()
            if cell not in groups:
                found = sorted({run.values[spec.column_key] for run in runs}) if spec.column_key else []
                raise ValueError(f"row {row!r} of {spec.title} has no run with {spec.column_key}={column} (found {found})")
            cells[(row, column)] = summarize_group(groups[cell], keys)
    _check_single_value(all_runs, "task")
    _check_single_value(all_runs, "scene")

    # CSV: raw values (fractions, m²)
    column_values = _columns_of(all_runs, spec, columns)
    header = [spec.row_header.lower()]
    for column in column_values:
        suffix = f"@{format_label_ratio(column)}" if column is not None else ""
        for metric in spec.metrics:
            header += [f"{metric.key}_mean{suffix}", f"{metric.key}_std{suffix}"]
        header.append(f"n_seeds{suffix}")
    csv_rows = []
    for row in names:
        values: list[object] = [row]
        for column in column_values:
            summaries = cells[(row, column)]
            for metric in spec.metrics:
                values += [summaries[metric.key].mean, summaries[metric.key].std]
            values.append(summaries[keys[0]].n_seeds)
        csv_rows.append(values)
    write_text(out, render_csv(header, csv_rows))

    # Markdown: percentages where the metric is a fraction
    md_columns, md_cells = [], [[] for _ in names]
    for column in column_values:
        prefix = f"{spec.column_header} {format_percent(column)}: " if column is not None else ""
        for metric in spec.metrics:
            md_columns.append(MarkdownColumn(prefix + metric.header, better=metric.better))
            for i, row in enumerate(names):
                s = cells[(row, column)][metric.key]
                md_cells[i].append(SeedSummary(mean=s.mean * metric.scale, std=s.std * metric.scale, n_seeds=s.n_seeds))
    titles = row_titles or {}
    write_text(out.with_suffix(".md"), render_markdown_table(
        title=spec.title, note=spec.note, row_header=spec.row_header,
        row_labels=[titles.get(row, row) for row in names], columns=md_columns, cells=md_cells,
    ))

    if summary is not None:
        write_json(summary, {
            row: {
                (f"{metric.key}@{format_label_ratio(column)}" if column is not None else metric.key): cells[(row, column)][metric.key].mean
                for column in column_values for metric in spec.metrics
            }
            for row in names
        })
    log.info("wrote %s and %s: %d rows x %d column groups from %d runs", out, out.with_suffix(".md"), len(names),
             len(column_values), len(all_runs))
