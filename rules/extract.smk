rule extract:
    """Layer-wise pooled features of one model on one dataset, on a GPU when there is one."""
    input:
        data="data/datasets/{dataset}.h5",
        weights=model_weights,
    output:
        "data/features/{model}/{dataset}.h5",
    log:
        "logs/extract/{model}/{dataset}.log",
    params:
        spec=from_config(model_keys, derive=model_spec_json),
        settings=from_config("extract"),
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
        " --execution {resources.execution:q} --data {input.data:q} {params.weights:q} --threads {threads} --out {output:q} > {log:q} 2>&1"
