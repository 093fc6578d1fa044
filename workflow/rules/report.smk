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
        cfg=pick("pretrain.threads", "gpu.lock_dir"),
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
        cfg=pick("ingest.ridgecrest", "transfer.coal_node", "pretrain.threads", "gpu.lock_dir"),
    log:
        "logs/transfer_coal_node.log",
    shell:
        "spar transfer coal-node --checkpoint {input.checkpoint} --head {input.head} --reference-store {input.store}"
        " --out {output} --config {params.cfg:q} > {log} 2>&1"


rule table5:
    input:
        flatten_rows(table5_rows()),
    output:
        csv="results/table5.csv",
        md="results/table5.md",
    params:
        rows=row_args(table5_rows()),
    log:
        "logs/table5.log",
    shell:
        "spar table table5 {params.rows} --out {output.csv} > {log} 2>&1"


rule fig5:
    input:
        expand("results/runs/table5/{method}/seed{seed}/metrics.json", method=config["methods"], seed=config["seeds"][0]),
    output:
        "results/figures/fig5.png",
    log:
        "logs/fig5.log",
    shell:
        "spar figure confusion --metrics {input}"
        " --title 'Figure 5: single-vehicle classification on scene " + config["finetune"]["vehicle"]["scene"]
        + f", seed {config['seeds'][0]}; cells are percentages of each true class, counts in brackets'"
        " --out {output} > {log} 2>&1"


rule table6:
    input:
        flatten_rows(table6_rows()),
    output:
        csv="results/table6.csv",
        md="results/table6.md",
    params:
        rows=row_args(table6_rows()),
        probs=drop_names(),
    log:
        "logs/table6.log",
    shell:
        "spar table table6 {params.rows} --columns {params.probs} --out {output.csv} > {log} 2>&1"


rule table8:
    input:
        flatten_rows(table8_rows()),
    output:
        csv="results/table8.csv",
        md="results/table8.md",
    params:
        rows=row_args(table8_rows()),
        titles=table8_titles(),
    log:
        "logs/table8.log",
    shell:
        "spar table table8 {params.rows} {params.titles} --out {output.csv} > {log} 2>&1"


rule table7:
    input:
        flatten_rows(table7_rows()),
    output:
        csv="results/table7.csv",
        md="results/table7.md",
    params:
        rows=row_args(table7_rows()),
        titles=table7_titles(),
    log:
        "logs/table7.log",
    shell:
        "spar table table7 {params.rows} {params.titles} --out {output.csv} > {log} 2>&1"


rule table2:
    input:
        expand("results/runs/table2/{method}/seed{seed}/metrics.json", method=config["methods"], seed=config["seeds"]),
    output:
        csv="results/table2.csv",
        md="results/table2.md",
    params:
        methods=config["methods"],
        radii=config["finetune"]["detection"]["radii_m"],
    log:
        "logs/table2.log",
    shell:
        "spar table table2 --metrics {input} --methods {params.methods} --radii {params.radii} --out {output.csv} > {log} 2>&1"


rule fig4:
    input:
        predictions=first_seed_runs("table2", "predictions.csv"),
        store="data/tensors/m3nvc.zarr",
    output:
        "results/figures/fig4.png",
    params:
        scene=config["finetune"]["detection"]["scene"],
        radius=config["finetune"]["detection"]["radii_m"][0],
    log:
        "logs/fig4.log",
    shell:
        "spar figure fig4 --predictions {input.predictions} --store {input.store} --scene {params.scene}"
        " --radius {params.radius} --out {output} > {log} 2>&1"
