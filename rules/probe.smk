rule probe:
    """Linear probes per layer: fit on the ID train split, C chosen on val, scored on ID test and OOD."""
    input:
        id=lambda wc: feature_file(wc.model, TASKS[wc.task]["id"]),
        ood=lambda wc: [feature_file(wc.model, name) for name in TASKS[wc.task].get("ood", [])],
    output:
        "results/probes/{model}/{task}.h5",
    log:
        "logs/probe/{model}/{task}.log",
    params:
        settings=as_json({k: v for k, v in config["probe"].items() if k != "tasks"}),
        id_name=lambda wc: TASKS[wc.task]["id"],
        head=lambda wc: "--score-head" if MODEL_SPECS[wc.model].head_label_space == TASKS[wc.task]["id"] else "",
        ood=lambda wc, input: " ".join(
            f"{name}={path}" for name, path in zip(TASKS[wc.task].get("ood", []), input.ood)
        ),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe probe --model {wildcards.model} --task {wildcards.task} --settings '{params.settings}'"
        " --id-name {params.id_name} --id {input.id} --ood {params.ood} {params.head} --out {output} > {log} 2>&1"
