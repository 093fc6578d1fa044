"""Flat metric summaries for `dvc metrics show` and `dvc exp show`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from spar.files import write_json


def write_table_summary(table_csv: Path, out: Path) -> None:
    """Write the mean columns of a table CSV as ``{method: {column: value}}`` JSON."""
    table = pd.read_csv(table_csv)
    means = [c for c in table.columns if "_mean" in c]
    summary = {str(row["method"]): {c.replace("_mean", ""): round(float(row[c]), 4) for c in means} for _, row in table.iterrows()}
    write_json(out, summary)
