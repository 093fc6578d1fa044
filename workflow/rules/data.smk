# Raw files -> tensor stores.


rule synth_m3nvc:
    output:
        directory("data/raw/m3nvc"),
    params:
        cfg=pick("synth.m3nvc"),
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
        cfg=pick("ingest.m3nvc"),
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
        cfg=pick("ingest.coal_node"),
    log:
        "logs/ingest_coal_node.log",
    benchmark:
        "logs/benchmarks/ingest_coal_node.tsv"
    shell:
        "spar ingest coal-node --out {output} --config {params.cfg:q} > {log} 2>&1"


rule synth_ridgecrest:
    output:
        directory("data/raw/ridgecrest"),
    params:
        cfg=pick("synth.ridgecrest"),
    log:
        "logs/synth_ridgecrest.log",
    benchmark:
        "logs/benchmarks/synth_ridgecrest.tsv"
    shell:
        "spar synth ridgecrest --out {output} --config {params.cfg:q} > {log} 2>&1"


rule ingest_ridgecrest:
    input:
        "data/raw/ridgecrest",
    output:
        directory("data/tensors/ridgecrest.zarr"),
    params:
        cfg=pick("ingest.ridgecrest"),
    log:
        "logs/ingest_ridgecrest.log",
    benchmark:
        "logs/benchmarks/ingest_ridgecrest.tsv"
    shell:
        "spar ingest ridgecrest --raw {input} --out {output} --config {params.cfg:q} > {log} 2>&1"


rule synth_realworld:
    output:
        directory("data/raw/realworld"),
    params:
        cfg=pick("synth.realworld"),
    log:
        "logs/synth_realworld.log",
    benchmark:
        "logs/benchmarks/synth_realworld.tsv"
    shell:
        "spar synth realworld --out {output} --config {params.cfg:q} > {log} 2>&1"


rule ingest_realworld:
    input:
        "data/raw/realworld",
    output:
        directory("data/tensors/realworld.zarr"),
    params:
        cfg=pick("ingest.realworld"),
    log:
        "logs/ingest_realworld.log",
    benchmark:
        "logs/benchmarks/ingest_realworld.tsv"
    shell:
        "spar ingest realworld --raw {input} --out {output} --config {params.cfg:q} > {log} 2>&1"
