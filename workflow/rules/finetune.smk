# Frozen encoders: embeddings once per checkpoint, then task heads per label ratio and seed.


rule embed:
    input:
        model="results/checkpoints/{dataset}/{method}/seed{seed}/model.pt",
        store="data/tensors/{dataset}.zarr",
    output:
        "results/embeddings/{dataset}/{method}/seed{seed}/{group}.npz",
    params:
        cfg=pick("pretrain.threads", "gpu"),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/embed/{dataset}/{method}/seed{seed}/{group}.log",
    shell:
        "spar embed --checkpoint {input.model} --store {input.store} --group {wildcards.group}"
        " --out {output} --config {params.cfg:q} > {log} 2>&1"


rule finetune_localization:
    input:
        "results/embeddings/m3nvc/{method}/seed{seed}/" + config["finetune"]["localization"]["scene"] + ".npz",
    output:
        metrics="results/runs/table1/{method}/ratio{ratio}/seed{seed}/metrics.json",
        predictions="results/runs/table1/{method}/ratio{ratio}/seed{seed}/predictions.csv",
    params:
        cfg=pick("finetune.localization", "model.heads", "model.mlp_ratio", "pretrain.threads", "gpu"),
        out_dir=subpath(output.metrics, parent=True),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/table1/{method}/ratio{ratio}/seed{seed}.log",
    shell:
        "spar finetune localization --embeddings {input} --label-ratio {wildcards.ratio} --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --config {params.cfg:q} > {log} 2>&1"


rule finetune_table1:
    input:
        table1_runs(),


rule finetune_earthquake:
    input:
        "results/embeddings/ridgecrest/{method}/seed{seed}/all.npz",
    output:
        metrics="results/runs/table3_ridgecrest/{method}/seed{seed}/metrics.json",
        predictions="results/runs/table3_ridgecrest/{method}/seed{seed}/predictions.csv",
        head="results/runs/table3_ridgecrest/{method}/seed{seed}/head.pt",
    params:
        cfg=pick("finetune.earthquake", "model.heads", "model.mlp_ratio", "pretrain.threads", "gpu"),
        out_dir=subpath(output.metrics, parent=True),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/table3_ridgecrest/{method}/seed{seed}.log",
    shell:
        "spar finetune localization --task earthquake --embeddings {input} --label-ratio 1.0 --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --config {params.cfg:q} > {log} 2>&1"


rule finetune_activity:
    input:
        "results/embeddings/realworld/{method}/seed{seed}/all.npz",
    output:
        metrics="results/runs/table3_har/{method}/seed{seed}/metrics.json",
        predictions="results/runs/table3_har/{method}/seed{seed}/predictions.csv",
    params:
        cfg=pick("finetune.activity", "pretrain.threads", "gpu"),
        out_dir=subpath(output.metrics, parent=True),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/table3_har/{method}/seed{seed}.log",
    shell:
        "spar finetune classification --task activity --embeddings {input} --label-ratio 1.0 --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --config {params.cfg:q} > {log} 2>&1"
