# The spar workflow: raw sensor files -> tensor stores -> pretrained encoders ->
# frozen-encoder task heads -> the SPAR paper's tables and figures.
# Every setting comes from params.yaml; override with `--config key=value`.

configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/report.smk"


rule demo:
    default_target: True
    input:
        "results/table1.csv",
        "results/table1.md",
        "results/metrics/table1.json",
        "results/figures/fig3.png",


rule vehicle_experiments:
    input:
        "results/table2.csv",
        "results/figures/fig4.png",
        "results/table5.csv",
        "results/figures/fig5.png",
        "results/table6.csv",
        "results/table7.csv",
        "results/table8.csv",


rule all:
    input:
        rules.demo.input,
        "results/table3.csv",
        "results/figures/fig6.png",
        "results/figures/fig7.png",
        "results/real/coal_node/report.json",
        "results/real/coal_node/localization.csv",
        rules.vehicle_experiments.input,
