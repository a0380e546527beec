rule train:
    """Train one architecture from scratch with the shared recipe (ImageNot protocol)."""
    input:
        data=training_set,
    output:
        "data/models/{model}.pt",
    log:
        "logs/train/{model}.log",
    benchmark:
        "logs/benchmarks/train/{model}.tsv"
    params:
        spec=from_config(model_keys, derive=model_spec_json),
        recipe=from_config("train"),
        introspective=from_config(icn_model_keys, derive=icn_model_flag),
    threads: rule_threads("train")
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime,
        gpu=TRAIN_GPU,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe train --model {wildcards.model:q} --spec {params.spec:q} --recipe {params.recipe:q}"
        " --data {input.data:q} {params.introspective:q} --threads {threads} --out {output:q} > {log:q} 2>&1"
