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
        weights=lambda wc, input: ["--weights", input.weights] if input.weights else [],
    threads: 1
    resources:
        mem_mb=extract_mem_mb,
        runtime=extract_runtime,
        gpu=gpu_wanted(EXTRACT_EXECUTION.get("device", "auto")),
        # How the job runs, not what it computes: a resource, so that changing it reruns nothing.
        execution=EXTRACT_EXECUTION_JSON,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe extract --model {wildcards.model:q} --spec {params.spec:q} --settings {params.settings:q}"
        " --execution {resources.execution:q} --data {input.data:q} {params.weights:q} --threads {threads} --spatial-grid {params.grid:q}"
        " --feature-dtype {params.dtype:q} --out {output:q} > {log:q} 2>&1"


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
        "python -m zooprobe dense-probe --model {wildcards.model:q} --dataset {wildcards.dataset:q}"
        " --settings {params.settings:q} --data {input.data:q} --features {input.features:q} --out {output:q} > {log:q} 2>&1"
