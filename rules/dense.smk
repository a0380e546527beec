use rule extract as extract_spatial with:
    """Spatial (N, C, h, w) feature maps of one model on one dense dataset, for dense probes."""
    output:
        "data/spatial/{model}/{dataset}.h5",
    log:
        "logs/extract_spatial/{model}/{dataset}.log",
    benchmark:
        "logs/benchmarks/extract_spatial/{model}/{dataset}.tsv"
    params:
        spatial=from_config("dense.grid", "dense.feature_dtype", derive=spatial_flags),
    threads: rule_threads("extract_spatial")


rule dense_probe:
    """Dense heads (depth, normals, figure-ground) per layer on frozen spatial features."""
    input:
        data="data/datasets/{dataset}.h5",
        features="data/spatial/{model}/{dataset}.h5",
    output:
        "results/dense/{model}/{dataset}.json",
    log:
        "logs/dense/{model}/{dataset}.log",
    benchmark:
        "logs/benchmarks/dense_probe/{model}/{dataset}.tsv"
    params:
        settings=DENSE_SETTINGS,
    threads: 1
    resources:
        mem_mb=probe_mem_mb,
        runtime=probe_runtime,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe dense-probe --model {wildcards.model:q} --dataset {wildcards.dataset:q}"
        " --settings {params.settings:q} --data {input.data:q} --features {input.features:q} --out {output:q} > {log:q} 2>&1"
