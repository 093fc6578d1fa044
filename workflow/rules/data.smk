# Raw files -> tensor stores.


rule synth_m3nvc:
    output:
        directory("data/raw/m3nvc"),
    params:
        cfg=sections("synth"),
    log:
        "logs/synth_m3nvc.log",
    benchmark:
        "logs/benchmarks/synth_m3nvc.tsv"
    shell:
        "spar synth m3nvc --out {output} --config {params.cfg:q} > {log} 2>&1"


rule ingest_m3nvc:
    input:
        "data/raw/m3nvc",
    output:
        directory("data/tensors/m3nvc.zarr"),
    params:
        cfg=sections("ingest"),
    log:
        "logs/ingest_m3nvc.log",
    benchmark:
        "logs/benchmarks/ingest_m3nvc.tsv"
    shell:
        "spar ingest m3nvc --raw {input} --out {output} --config {params.cfg:q} > {log} 2>&1"


rule ingest_coal_node:
    output:
        directory("data/tensors/coal_node.zarr"),
    params:
        cfg=sections("ingest"),
    log:
        "logs/ingest_coal_node.log",
    benchmark:
        "logs/benchmarks/ingest_coal_node.tsv"
    shell:
        "spar ingest coal-node --out {output} --config {params.cfg:q} > {log} 2>&1"
