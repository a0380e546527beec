rule train:
    """Train one architecture from scratch with the shared recipe (ImageNot protocol)."""
    input:
        data=lambda wc: f"data/datasets/{MODEL_SPECS[wc.model].train_on}.h5",
    output:
        "data/models/{model}.pt",
    log:
        "logs/train/{model}.log",
    params:
        spec=from_config(model_keys, derive=model_spec_json),
        recipe=from_config("train"),
        introspective=from_config(icn_model_keys, derive=icn_model_flag),
    threads: 1
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        gpu=gpu_wanted(config["train"].get("device", "auto")),
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe train --model {wildcards.model:q} --spec {params.spec:q} --recipe {params.recipe:q}"
        " --data {input.data:q} {params.introspective:q} --threads {threads} --out {output:q} > {log:q} 2>&1"
