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
        cfg=sections("ingest", "pretrain", "gpu"),
    log:
        "logs/report_coal_node.log",
    shell:
        "spar report coal-node --store {input.store} --checkpoints {input.checkpoints} --out {output}"
        " --config {params.cfg:q} > {log} 2>&1"
