"""Loading the pipeline parameters.

Every command reads its settings from the same nested structure as
``params.yaml``. By hand, a step reads the file itself (``--params``). The
Snakemake rules pass a JSON string with the sections the step needs
(``--config``), so overrides from ``snakemake --config`` and ``dvc exp run -S``
reach the step, and a changed setting makes Snakemake rerun it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A missing or invalid parameter."""


def load(params_path: str | Path | None = None, config_json: str | None = None) -> dict:
    """Return the parameter tree from a JSON string or a YAML file (JSON wins when both are given)."""
    if config_json:
        try:
            tree = json.loads(config_json)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--config is not valid JSON ({err}); pass a JSON object such as '{{\"mask_ratio\": 0.75}}'") from err
        if not isinstance(tree, dict):
            raise ConfigError("--config must be a JSON object")
        return tree
    path = Path(params_path or "params.yaml")
    if not path.exists():
        raise ConfigError(f"parameter file {path} not found; run from the repository root or pass --params")
    with path.open() as fh:
        tree = yaml.safe_load(fh)
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} does not contain a YAML mapping")
    return tree


def get(tree: dict, dotted: str, default: Any = ...) -> Any:
    """Look up ``a.b.c`` in a nested dict; raise ConfigError naming the key when it is missing."""
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not ...:
                return default
            raise ConfigError(f"parameter {dotted!r} is missing (no {part!r}); add it to params.yaml")
        node = node[part]
    return node
