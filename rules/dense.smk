rule extract_spatial:
    """Spatial (N, C, h, w) feature maps of one model on one dense dataset, for dense probes."""
    input:
        data="data/datasets/{dataset}.h5",
        weights=model_weights,
    output:
        "data/spatial/{model}/{dataset}.h5",
    log:
        "logs/extract_spatial/{model}/{dataset}.log",
    params:
        spec=from_config(model_keys, derive=model_spec_json),
        settings=from_config("extract"),
        grid=from_config("dense.grid"),
        dtype=from_config("dense.feature_dtype", derive=lambda wc: config["dense"]["feature_dtype"]),
        weights=lambda wc, input: f"--weights {input.weights}" if input.weights else "",
    threads: 1
    resources:
        mem_mb=extract_mem_mb,
        runtime=extract_runtime,
        gpu=gpu_wanted(config["extract"]["device"]),
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe extract --model {wildcards.model} --spec '{params.spec}' --settings '{params.settings}'"
        " --data {input.data} {params.weights} --threads {threads} --spatial-grid {params.grid}"
        " --feature-dtype {params.dtype} --out {output} > {log} 2>&1"


rule dense_probe:
    """Dense heads (depth, normals, figure-ground) per layer on frozen spatial features."""
    input:
        data="data/datasets/{dataset}.h5",
        features="data/spatial/{model}/{dataset}.h5",
    output:
        "results/dense/{model}/{dataset}.json",
    log:
        "logs/dense/{model}/{dataset}.log",
    params:
        settings=from_config(*DENSE_SETTINGS, derive=dense_settings),
    threads: 1
    resources:
        mem_mb=probe_mem_mb,
        runtime=probe_runtime,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe dense-probe --model {wildcards.model} --dataset {wildcards.dataset}"
        " --settings '{params.settings}' --data {input.data} --features {input.features} --out {output} > {log} 2>&1"
