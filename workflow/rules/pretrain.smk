# Self-supervised pretraining: one job per dataset, method and seed.
#
# A job takes gpu.gpus_per_job GPUs. With more than one, torchrun starts one
# process per GPU on the job's node and pretraining runs them as one
# DistributedDataParallel group. The `gpu` resource is the number of GPUs a job
# holds, so `--resources gpu=N` caps the GPUs of all jobs that run (or, on a cluster, are submitted) at once.


def pretrain_gpus():
    return int(config["gpu"].get("gpus_per_job", 1))


def pretrain_launcher():
    """The command that runs `spar`: plain, or under torchrun with one process per GPU."""
    if pretrain_gpus() == 1:
        return "spar"
    return f"torchrun --standalone --nproc-per-node {pretrain_gpus()} -m spar"


rule pretrain:
    input:
        store="data/tensors/{dataset}.zarr",
    output:
        model="results/checkpoints/{dataset}/{method}/seed{seed}/model.pt",
        history="results/checkpoints/{dataset}/{method}/seed{seed}/history.json",
    params:
        cfg=pretrain_config,
        launcher=pretrain_launcher(),
    threads: config["pretrain"]["threads"] * pretrain_gpus()
    resources:
        gpu=pretrain_gpus(),
    log:
        "logs/pretrain/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/pretrain/{dataset}/{method}/seed{seed}.tsv"
    shell:
        "{params.launcher} pretrain --store {input.store} --dataset {wildcards.dataset} --method {wildcards.method}"
        " --seed {wildcards.seed} --out {output.model} --config {params.cfg:q} > {log} 2>&1"


rule pretrain_m3nvc:
    input:
        checkpoints_of("m3nvc"),


rule pretrain_ablation:
    input:
        store="data/tensors/m3nvc.zarr",
    output:
        model="results/ablations/{variant}/checkpoints/seed{seed}/model.pt",
        history="results/ablations/{variant}/checkpoints/seed{seed}/history.json",
    params:
        cfg=ablation_config,
        launcher=pretrain_launcher(),
    threads: config["pretrain"]["threads"] * pretrain_gpus()
    resources:
        gpu=pretrain_gpus(),
    log:
        "logs/pretrain_ablation/{variant}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/pretrain_ablation/{variant}/seed{seed}.tsv"
    shell:
        "{params.launcher} pretrain --store {input.store} --dataset m3nvc --method spar"
        " --seed {wildcards.seed} --out {output.model} --config {params.cfg:q} > {log} 2>&1"


rule pretrain_unseen_placement:
    input:
        store="data/tensors/m3nvc.zarr",
    output:
        model="results/unseen/checkpoints/{method}/seed{seed}/model.pt",
        history="results/unseen/checkpoints/{method}/seed{seed}/history.json",
    params:
        cfg=pretrain_config_m3nvc,
        launcher=pretrain_launcher(),
        exclude=config["placement"]["exclude_scenes"],
    threads: config["pretrain"]["threads"] * pretrain_gpus()
    resources:
        gpu=pretrain_gpus(),
    log:
        "logs/pretrain_unseen/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/pretrain_unseen/{method}/seed{seed}.tsv"
    shell:
        "{params.launcher} pretrain --store {input.store} --dataset m3nvc --method {wildcards.method} --exclude-groups {params.exclude}"
        " --seed {wildcards.seed} --out {output.model} --config {params.cfg:q} > {log} 2>&1"
