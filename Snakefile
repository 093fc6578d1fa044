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


rule all:
    input:
        rules.demo.input,
        "results/table3.csv",
        "results/figures/fig6.png",
        "results/figures/fig7.png",
        "results/real/coal_node/report.json",
        "results/real/coal_node/localization.csv",
