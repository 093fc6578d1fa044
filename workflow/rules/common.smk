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


def sections(*keys):
    """JSON of the named top-level sections of the config."""
    return to_json({key: config[key] for key in keys})


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
