# Helpers shared by the rules: settings passed to each step and the file lists of targets.

import copy
import json
import shlex
from argparse import Namespace
from pathlib import Path

import jsonschema
import yaml
from snakemake.utils import validate

from spar.models.objectives.base import objective_class
from spar.models.registry import METHODS


def _allowed(schema, definitions):
    """Describe the values a schema node accepts, such as "number, >= 0, < 1"."""
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    parts = []
    for key, template in (("type", "{}"), ("enum", "one of {}"), ("minimum", ">= {}"), ("exclusiveMinimum", "> {}"),
                          ("maximum", "<= {}"), ("exclusiveMaximum", "< {}"), ("minItems", "at least {} item(s)"),
                          ("pattern", "matching {}")):
        if key in schema:
            parts.append(template.format(schema[key]))
    if schema.get("uniqueItems"):
        parts.append("no repeated items")
    if "items" in schema:
        parts.append(f"items: {_allowed(schema['items'], definitions)}")
    return ", ".join(parts) or "see workflow/schemas/params.schema.yaml"


def params_errors(tree, schema_file):
    """Return one line per invalid setting of ``tree``, naming its dotted key, the value and the allowed values."""
    schema = yaml.safe_load(Path(schema_file).read_text())
    definitions = schema.get("$defs", {})
    lines = []
    for error in jsonschema.Draft202012Validator(schema).iter_errors(tree):
        key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        if error.validator == "additionalProperties" and "properties" in error.schema:
            allowed = sorted(error.schema["properties"])
            for unknown in sorted(set(error.instance) - set(allowed)):
                name = unknown if key == "(top level)" else f"{key}.{unknown}"
                lines.append(f"{name} = {error.instance[unknown]!r}: unknown key; allowed keys here: {', '.join(allowed)}")
            continue
        line = f"{key} = {error.instance!r}: {error.message}; allowed: {_allowed(error.schema, definitions)}"
        if error.absolute_path and error.absolute_path[0] == "methods":
            line += f"; registered methods: {', '.join(sorted(METHODS))}"
        lines.append(line)
    return sorted(lines)


# stop before planning any job when a key is misspelled or a value is out of range, and list every invalid key
_params_errors = params_errors(config, Path(workflow.basedir) / "workflow/schemas/params.schema.yaml")
if _params_errors:
    raise ValueError(
        "invalid parameters in the config (params.yaml, --configfile or --config); fix these settings:\n  "
        + "\n  ".join(_params_errors)
    )
validate(config, "../schemas/params.schema.yaml")
_unknown_methods = sorted(set(config["methods"]) - set(METHODS))
if _unknown_methods:
    raise ValueError(
        f"unknown methods {_unknown_methods} in the config (params.yaml, --configfile or --config); registered methods are {sorted(METHODS)}"
    )


wildcard_constraints:
    dataset="[a-z0-9_]+",
    method="[a-z0-9_]+",
    seed=r"\d+",
    ratio=r"[0-9.]+",
    group="[A-Za-z0-9_.-]+",
    variant="[a-z0-9_.]+",
    prob=r"[0-9.]+",
    mode="random|fitted",


def to_json(tree):
    """Serialise settings for `spar --config`; a change in them makes Snakemake rerun the step."""
    return json.dumps(tree, sort_keys=True)


def pick(*paths):
    """JSON of the named parts of the config, such as "synth.m3nvc" or "gpu", nested as in params.yaml.

    A rule passes only what its step reads, so a change elsewhere in
    params.yaml does not make Snakemake rerun it.
    """
    tree = {}
    for path in paths:
        keys = path.split(".")
        value = config
        for key in keys:
            value = value[key]
        node = tree
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return to_json(tree)


def pretrain_config(wildcards):
    """Settings one pretraining job reads: only its own dataset's tokenisation and overrides.

    A method that is not pretrained (0 epochs) reads no optimisation setting,
    so a new mask ratio or learning rate does not rerun it. The contrastive
    methods hide no tokens and get no mask ratio either.
    """
    tree = {
        "model": config["model"],
        "gpu": config["gpu"],
        "datasets": {wildcards.dataset: config["datasets"][wildcards.dataset]},
    }
    objective_settings = config.get("objectives", {}).get(wildcards.method)
    if objective_settings:
        tree["objectives"] = {wildcards.method: objective_settings}
    if METHODS[wildcards.method].pretrain_overrides.get("epochs") == 0:
        tree["pretrain"] = {"threads": config["pretrain"]["threads"]}
    else:
        tree["pretrain"] = config["pretrain"]
        if objective_class(METHODS[wildcards.method].objective).uses_mask_ratio:
            tree["mask_ratio"] = config["mask_ratio"]
    return to_json(tree)


def pretrain_config_m3nvc(wildcards):
    """`pretrain_config` of the M3N-VC store, for rules whose outputs do not name the dataset."""
    return pretrain_config(Namespace(dataset="m3nvc", method=wildcards.method))


def dataset_seeds(dataset):
    """Seeds of a dataset: its own `seeds` entry if it has one, else the global list."""
    return config["datasets"].get(dataset, {}).get("seeds", config["seeds"])


def ratio_names():
    """Label ratios as they appear in run folder names, for example 1.0, 0.5, 0.2."""
    return [str(float(r)) for r in config["finetune"]["localization"]["label_ratios"]]


def checkpoints_of(dataset):
    return expand(
        "results/checkpoints/{dataset}/{method}/seed{seed}/model.pt",
        dataset=dataset,
        method=config["methods"],
        seed=dataset_seeds(dataset),
    )


def table1_runs():
    return expand(
        "results/runs/table1/{method}/ratio{ratio}/seed{seed}/metrics.json",
        method=config["methods"],
        ratio=ratio_names(),
        seed=config["seeds"],
    )


def fig3_predictions():
    """Predictions of every method for the first seed and the first (largest) label ratio."""
    return expand(
        "results/runs/table1/{method}/ratio{ratio}/seed{seed}/predictions.csv",
        method=config["methods"],
        ratio=ratio_names()[0],
        seed=config["seeds"][0],
    )


def table3_runs(table):
    """metrics.json of every method and seed of one half of Table 3 (all fine-tuning labels)."""
    return expand("results/runs/{table}/{method}/seed{seed}/metrics.json", table=table, method=config["methods"], seed=config["seeds"])


def first_seed_runs(table, name):
    """One file per method from the first seed's run of a Table 3 half."""
    return expand("results/runs/{table}/{method}/seed{seed}/{name}", table=table, method=config["methods"], seed=config["seeds"][0], name=name)


# --- the other vehicle experiments: classification, message drop, ablations ---------------------


def localization_scene():
    return config["finetune"]["localization"]["scene"]


def first_ratio_name():
    """Label ratio 1.0 as it appears in run folder names."""
    return str(1.0)


def row_args(rows):
    """Command-line rows of `spar table`: ``--row NAME PATH...`` per (name, paths), quoted for the shell."""
    return " ".join("--row " + " ".join(shlex.quote(str(part)) for part in (name, *paths)) for name, paths in rows)


def flatten_rows(rows):
    return [path for _, paths in rows for path in paths]


def table5_rows():
    return [(m, expand("results/runs/table5/{method}/seed{seed}/metrics.json", method=m, seed=config["seeds"])) for m in config["methods"]]


def drop_names():
    """Message drop probabilities as they appear in run folder names, for example 0.05."""
    return [str(float(p)) for p in config["message_drop"]["probabilities"]]


def table6_rows():
    return [
        (m, expand("results/runs/table6/{method}/drop{prob}/seed{seed}/metrics.json", method=m, prob=drop_names(), seed=config["seeds"]))
        for m in config["methods"]
    ]


def apply_settings(tree, changes):
    """Return a copy of ``tree`` with dotted keys such as ``model.masking`` set; an unknown key is an error."""
    tree = copy.deepcopy(tree)
    for dotted, value in changes.items():
        keys = dotted.split(".")
        node = tree
        for key in keys[:-1]:
            node = node[key]
        if keys[-1] not in node:
            raise ValueError(f"params.yaml ablations: {dotted!r} is not a key of params.yaml")
        node[keys[-1]] = value
    return tree


def ablation_config(wildcards):
    """Settings of one ablation's SPAR pretraining: those of `pretrain_config` with the variant's changes."""
    changes = config["ablations"][wildcards.variant]["set"]
    base = pretrain_config(Namespace(dataset="m3nvc", method="spar"))
    return to_json(apply_settings(json.loads(base), changes))


def table8_rows():
    """One row per ablation; the unchanged variant reuses SPAR's single-vehicle localization runs."""
    rows = []
    for variant, entry in config["ablations"].items():
        if entry["set"]:
            pattern = "results/runs/table8/{variant}/seed{seed}/metrics.json"
        else:
            pattern = "results/runs/table1/spar/ratio" + first_ratio_name() + "/seed{seed}/metrics.json"
        rows.append((variant, expand(pattern, variant=variant, seed=config["seeds"])))
    return rows


def table8_titles():
    return " ".join("--row-title " + shlex.quote(f"{name}={entry['title']}") for name, entry in config["ablations"].items())


# --- unseen placement -------------------------------------------------------------------------------


def placement_modes(method):
    """Structural-position modes of a method: every configured mode with structural positions, else random only.

    Without structural positions both modes give the same checkpoint, so such a method gets one row.
    """
    from spar.models.registry import model_config_for

    if model_config_for(method, config["model"]).structural_embedding:
        return config["placement"]["modes"]
    return ["random"]


def table7_rows():
    rows = []
    for method in config["methods"]:
        modes = placement_modes(method)
        for mode in modes:
            name = method if len(modes) == 1 else f"{method}/{mode}"
            rows.append((name, expand("results/runs/table7/{method}/{mode}/seed{seed}/metrics.json", method=method, mode=mode, seed=config["seeds"])))
    return rows


def table7_titles():
    titles = []
    for name, _ in table7_rows():
        if "/" in name:
            method, mode = name.split("/")
            titles.append("--row-title " + shlex.quote(f"{name}={method}, {mode} structural positions"))
    return " ".join(titles)
