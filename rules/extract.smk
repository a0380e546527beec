rule extract:
    """Layer-wise pooled features of one model on one dataset, on a GPU when there is one."""
    input:
        data="data/datasets/{dataset}.h5",
        weights=model_weights,
    output:
        "data/features/{model}/{dataset}.h5",
    log:
        "logs/extract/{model}/{dataset}.log",
    benchmark:
        "logs/benchmarks/extract/{model}/{dataset}.tsv"
    params:
        spec=from_config(model_keys, derive=model_spec_json),
        settings=from_config("extract"),
        weights=weights_flag,
        # Pooled features: no spatial flags (extract_spatial, in dense.smk, sets them).
        spatial=[],
    threads: rule_threads("extract")
    resources:
        mem_mb=extract_mem_mb,
        runtime=extract_runtime,
        gpu=EXTRACT_GPU,
        # How the job runs, not what it computes: a resource, so that changing it reruns nothing.
        execution=EXTRACT_EXECUTION_JSON,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe extract --model {wildcards.model:q} --spec {params.spec:q} --settings {params.settings:q}"
        " --execution {resources.execution:q} --data {input.data:q} {params.weights:q} --threads {threads}"
        " {params.spatial:q} --out {output:q} > {log:q} 2>&1"
