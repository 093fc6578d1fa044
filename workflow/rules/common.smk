# Helpers shared by the rules: settings passed to each step and the file lists of targets.

import json

from snakemake.utils import validate

from spar.models.registry import METHODS


# stop before planning any job when a key is misspelled or a value is out of range
validate(config, "../schemas/params.schema.yaml")
_unknown_methods = sorted(set(config["methods"]) - set(METHODS))
if _unknown_methods:
    raise ValueError(f"params.yaml: unknown methods {_unknown_methods}; registered methods are {sorted(METHODS)}")


wildcard_constraints:
    dataset="[a-z0-9_]+",
    method="[a-z0-9_]+",
    seed=r"\d+",
    ratio=r"[0-9.]+",
    group="[A-Za-z0-9_.-]+",


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
    so a new mask ratio or learning rate does not rerun it.
    """
    tree = {
        "model": config["model"],
        "gpu": config["gpu"],
        "datasets": {wildcards.dataset: config["datasets"][wildcards.dataset]},
    }
    if METHODS[wildcards.method].pretrain_overrides.get("epochs") == 0:
        tree["pretrain"] = {"threads": config["pretrain"]["threads"]}
    else:
        tree["mask_ratio"] = config["mask_ratio"]
        tree["pretrain"] = config["pretrain"]
    return to_json(tree)


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
