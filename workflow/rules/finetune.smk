# Frozen encoders: embeddings once per checkpoint, then task heads per label ratio and seed.


rule embed:
    input:
        model="results/checkpoints/{dataset}/{method}/seed{seed}/model.pt",
        store="data/tensors/{dataset}.zarr",
    output:
        "results/embeddings/{dataset}/{method}/seed{seed}/{group}.npz",
    params:
        cfg=pick("pretrain.threads", "gpu.lock_dir"),
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
        cfg=pick("finetune.localization", "finetune.checkpoint_every", "model.heads", "model.mlp_ratio", "pretrain.threads", "gpu.lock_dir"),
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
        cfg=pick("finetune.earthquake", "finetune.checkpoint_every", "model.heads", "model.mlp_ratio", "pretrain.threads", "gpu.lock_dir"),
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
        cfg=pick("finetune.activity", "finetune.checkpoint_every", "pretrain.threads", "gpu.lock_dir"),
        out_dir=subpath(output.metrics, parent=True),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/table3_har/{method}/seed{seed}.log",
    shell:
        "spar finetune classification --task activity --embeddings {input} --label-ratio 1.0 --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --config {params.cfg:q} > {log} 2>&1"


rule finetune_vehicle:
    input:
        "results/embeddings/m3nvc/{method}/seed{seed}/" + config["finetune"]["vehicle"]["scene"] + ".npz",
    output:
        metrics="results/runs/table5/{method}/seed{seed}/metrics.json",
        predictions="results/runs/table5/{method}/seed{seed}/predictions.csv",
    params:
        cfg=pick("finetune.vehicle", "finetune.checkpoint_every", "pretrain.threads", "gpu.lock_dir"),
        out_dir=subpath(output.metrics, parent=True),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/table5/{method}/seed{seed}.log",
    shell:
        "spar finetune classification --task vehicle --embeddings {input} --label-ratio 1.0 --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --config {params.cfg:q} > {log} 2>&1"


rule embed_message_drop:
    input:
        model="results/checkpoints/m3nvc/{method}/seed{seed}/model.pt",
        store="data/tensors/m3nvc.zarr",
    output:
        "results/message_drop/embeddings/drop{prob}/{method}/seed{seed}/{group}.npz",
    params:
        cfg=pick("pretrain.threads", "gpu.lock_dir"),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/embed_message_drop/drop{prob}/{method}/seed{seed}/{group}.log",
    shell:
        "spar embed --checkpoint {input.model} --store {input.store} --group {wildcards.group}"
        " --drop-prob {wildcards.prob} --drop-seed {wildcards.seed}"
        " --out {output} --config {params.cfg:q} > {log} 2>&1"


rule finetune_message_drop:
    input:
        "results/message_drop/embeddings/drop{prob}/{method}/seed{seed}/" + localization_scene() + ".npz",
    output:
        metrics="results/runs/table6/{method}/drop{prob}/seed{seed}/metrics.json",
        predictions="results/runs/table6/{method}/drop{prob}/seed{seed}/predictions.csv",
    params:
        cfg=pick("finetune.localization", "finetune.checkpoint_every", "model.heads", "model.mlp_ratio", "pretrain.threads", "gpu.lock_dir"),
        out_dir=subpath(output.metrics, parent=True),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/table6/{method}/drop{prob}/seed{seed}.log",
    shell:
        "spar finetune localization --embeddings {input} --label-ratio 1.0 --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --config {params.cfg:q} > {log} 2>&1"


rule embed_ablation:
    input:
        model="results/ablations/{variant}/checkpoints/seed{seed}/model.pt",
        store="data/tensors/m3nvc.zarr",
    output:
        "results/ablations/{variant}/embeddings/seed{seed}/{group}.npz",
    params:
        cfg=pick("pretrain.threads", "gpu.lock_dir"),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/embed_ablation/{variant}/seed{seed}/{group}.log",
    shell:
        "spar embed --checkpoint {input.model} --store {input.store} --group {wildcards.group}"
        " --out {output} --config {params.cfg:q} > {log} 2>&1"


rule finetune_ablation:
    input:
        "results/ablations/{variant}/embeddings/seed{seed}/" + localization_scene() + ".npz",
    output:
        metrics="results/runs/table8/{variant}/seed{seed}/metrics.json",
        predictions="results/runs/table8/{variant}/seed{seed}/predictions.csv",
    params:
        cfg=pick("finetune.localization", "finetune.checkpoint_every", "model.heads", "model.mlp_ratio", "pretrain.threads", "gpu.lock_dir"),
        out_dir=subpath(output.metrics, parent=True),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/table8/{variant}/seed{seed}.log",
    shell:
        "spar finetune localization --embeddings {input} --label-ratio 1.0 --seed {wildcards.seed} --tag variant={wildcards.variant}"
        " --out-dir {params.out_dir} --config {params.cfg:q} > {log} 2>&1"


rule place_unseen:
    input:
        model="results/unseen/checkpoints/{method}/seed{seed}/model.pt",
        store="data/tensors/m3nvc.zarr",
    output:
        model="results/unseen/placed/{mode}/{method}/seed{seed}/model.pt",
        summary="results/unseen/placed/{mode}/{method}/seed{seed}/model.placement.json",
    params:
        cfg=pick("placement", "mask_ratio", "pretrain.threads", "gpu.lock_dir"),
        scene=config["placement"]["scene"],
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/place_unseen/{mode}/{method}/seed{seed}.log",
    shell:
        "spar placement --checkpoint {input.model} --store {input.store} --group {params.scene} --mode {wildcards.mode}"
        " --seed {wildcards.seed} --out {output.model} --config {params.cfg:q} > {log} 2>&1"


rule embed_unseen:
    input:
        model="results/unseen/placed/{mode}/{method}/seed{seed}/model.pt",
        store="data/tensors/m3nvc.zarr",
    output:
        "results/unseen/embeddings/{mode}/{method}/seed{seed}/{group}.npz",
    params:
        cfg=pick("pretrain.threads", "gpu.lock_dir"),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/embed_unseen/{mode}/{method}/seed{seed}/{group}.log",
    shell:
        "spar embed --checkpoint {input.model} --store {input.store} --group {wildcards.group}"
        " --out {output} --config {params.cfg:q} > {log} 2>&1"


rule finetune_unseen:
    input:
        "results/unseen/embeddings/{mode}/{method}/seed{seed}/" + config["placement"]["scene"] + ".npz",
    output:
        metrics="results/runs/table7/{method}/{mode}/seed{seed}/metrics.json",
        predictions="results/runs/table7/{method}/{mode}/seed{seed}/predictions.csv",
    params:
        cfg=pick("finetune.localization", "finetune.checkpoint_every", "model.heads", "model.mlp_ratio", "pretrain.threads", "gpu.lock_dir"),
        out_dir=subpath(output.metrics, parent=True),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/table7/{method}/{mode}/seed{seed}.log",
    shell:
        "spar finetune localization --embeddings {input} --label-ratio 1.0 --seed {wildcards.seed}"
        " --tag placement_mode={wildcards.mode} --out-dir {params.out_dir} --config {params.cfg:q} > {log} 2>&1"


rule finetune_detection:
    input:
        "results/embeddings/m3nvc/{method}/seed{seed}/" + config["finetune"]["detection"]["scene"] + ".npz",
    output:
        metrics="results/runs/table2/{method}/seed{seed}/metrics.json",
        predictions="results/runs/table2/{method}/seed{seed}/predictions.csv",
        ground_truth="results/runs/table2/{method}/seed{seed}/ground_truth.csv",
    params:
        cfg=pick("finetune.detection", "finetune.checkpoint_every", "model.heads", "model.mlp_ratio", "pretrain.threads", "gpu.lock_dir"),
        out_dir=subpath(output.metrics, parent=True),
    threads: config["pretrain"]["threads"]
    resources:
        gpu=1,
    log:
        "logs/finetune/table2/{method}/seed{seed}.log",
    shell:
        "spar finetune detection --embeddings {input} --label-ratio 1.0 --seed {wildcards.seed}"
        " --out-dir {params.out_dir} --config {params.cfg:q} > {log} 2>&1"
