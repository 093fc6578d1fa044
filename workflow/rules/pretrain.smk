# Self-supervised pretraining: one job per dataset, method and seed.


rule pretrain:
    input:
        store="data/tensors/{dataset}.zarr",
    output:
        model="results/checkpoints/{dataset}/{method}/seed{seed}/model.pt",
        history="results/checkpoints/{dataset}/{method}/seed{seed}/history.json",
    params:
        cfg=pretrain_config,
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/pretrain/{dataset}/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/pretrain/{dataset}/{method}/seed{seed}.tsv"
    shell:
        "spar pretrain --store {input.store} --dataset {wildcards.dataset} --method {wildcards.method}"
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
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/pretrain_ablation/{variant}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/pretrain_ablation/{variant}/seed{seed}.tsv"
    shell:
        "spar pretrain --store {input.store} --dataset m3nvc --method spar"
        " --seed {wildcards.seed} --out {output.model} --config {params.cfg:q} > {log} 2>&1"


rule pretrain_unseen_placement:
    input:
        store="data/tensors/m3nvc.zarr",
    output:
        model="results/unseen/checkpoints/{method}/seed{seed}/model.pt",
        history="results/unseen/checkpoints/{method}/seed{seed}/history.json",
    params:
        cfg=pretrain_config_m3nvc,
        exclude=config["placement"]["exclude_scenes"],
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/pretrain_unseen/{method}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/pretrain_unseen/{method}/seed{seed}.tsv"
    shell:
        "spar pretrain --store {input.store} --dataset m3nvc --method {wildcards.method} --exclude-groups {params.exclude}"
        " --seed {wildcards.seed} --out {output.model} --config {params.cfg:q} > {log} 2>&1"
