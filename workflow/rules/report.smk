# Runs -> tables, figures and reports.


rule table1:
    input:
        table1_runs(),
    output:
        csv="results/table1.csv",
        md="results/table1.md",
        metrics="results/metrics/table1.json",
    params:
        methods=config["methods"],
        ratios=ratio_names(),
    log:
        "logs/table1.log",
    shell:
        "spar table table1 --metrics {input} --methods {params.methods} --label-ratios {params.ratios}"
        " --out {output.csv} --summary {output.metrics} > {log} 2>&1"


rule fig3:
    input:
        predictions=fig3_predictions(),
        store="data/tensors/m3nvc.zarr",
    output:
        "results/figures/fig3.png",
    params:
        scene=config["finetune"]["localization"]["scene"],
    log:
        "logs/fig3.log",
    shell:
        "spar figure fig3 --predictions {input.predictions} --store {input.store} --scene {params.scene}"
        " --out {output} > {log} 2>&1"


rule report_coal_node:
    input:
        store="data/tensors/coal_node.zarr",
        checkpoints=expand(
            "results/checkpoints/coal_node/spar/seed{seed}/model.pt", seed=dataset_seeds("coal_node")
        ),
    output:
        "results/real/coal_node/report.json",
    params:
        cfg=pick("pretrain.threads", "gpu"),
    log:
        "logs/report_coal_node.log",
    shell:
        "spar report coal-node --store {input.store} --checkpoints {input.checkpoints} --out {output}"
        " --config {params.cfg:q} > {log} 2>&1"


rule table3:
    input:
        ridgecrest=table3_runs("table3_ridgecrest"),
        har=table3_runs("table3_har"),
    output:
        csv="results/table3.csv",
        md="results/table3.md",
        metrics="results/metrics/table3.json",
    params:
        methods=config["methods"],
    log:
        "logs/table3.log",
    shell:
        "spar table table3 --ridgecrest {input.ridgecrest} --har {input.har} --methods {params.methods}"
        " --out {output.csv} --summary {output.metrics} > {log} 2>&1"


rule fig6:
    input:
        predictions=first_seed_runs("table3_ridgecrest", "predictions.csv"),
        store="data/tensors/ridgecrest.zarr",
    output:
        "results/figures/fig6.png",
    log:
        "logs/fig6.log",
    shell:
        "spar figure fig6 --predictions {input.predictions} --store {input.store} --out {output} > {log} 2>&1"


rule fig7:
    input:
        first_seed_runs("table3_har", "metrics.json"),
    output:
        "results/figures/fig7.png",
    log:
        "logs/fig7.log",
    shell:
        "spar figure confusion --metrics {input} --title 'Figure 7: activity recognition on RealWorld-HAR validation subjects'"
        " --out {output} > {log} 2>&1"


rule transfer_coal_node:
    input:
        checkpoint="results/checkpoints/ridgecrest/" + config["transfer"]["coal_node"]["method"] + f"/seed{config['seeds'][0]}/model.pt",
        head="results/runs/table3_ridgecrest/" + config["transfer"]["coal_node"]["method"] + f"/seed{config['seeds'][0]}/head.pt",
        store="data/tensors/ridgecrest.zarr",
    output:
        "results/real/coal_node/localization.csv",
    params:
        cfg=pick("ingest.ridgecrest", "transfer.coal_node", "pretrain.threads", "gpu"),
    log:
        "logs/transfer_coal_node.log",
    shell:
        "spar transfer coal-node --checkpoint {input.checkpoint} --head {input.head} --reference-store {input.store}"
        " --out {output} --config {params.cfg:q} > {log} 2>&1"
