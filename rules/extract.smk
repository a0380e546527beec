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
        " --data {input.data} {params.weights} --threads {threads} --out {output} > {log} 2>&1"
