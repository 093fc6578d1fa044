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
