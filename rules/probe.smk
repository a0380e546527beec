rule probe:
    """Linear probes per layer: fit on the ID train split, C chosen on val, scored on ID test and OOD;
    and probes of its own on each transfer set (its train split, C on its val, scored on its test)."""
    input:
        id=lambda wc: feature_file(wc.model, TASKS[wc.task]["id"]),
        ood=lambda wc: [feature_file(wc.model, name) for name in TASKS[wc.task].get("ood", [])],
        transfer=lambda wc: [feature_file(wc.model, name) for name in TASKS[wc.task].get("transfer", [])],
    output:
        "results/probes/{model}/{task}.h5",
    log:
        "logs/probe/{model}/{task}.log",
    params:
        settings=from_config(*PROBE_SETTINGS, derive=probe_settings),
        id_name=from_config("probe.tasks.{task}", derive=lambda wc: TASKS[wc.task]["id"]),
        head=from_config(head_keys, "probe.tasks.{task}", derive=lambda wc: score_head_flag(wc.model, wc.task)),
        ood=from_config("probe.tasks.{task}", derive=ood_feature_args),
        transfer=from_config("probe.tasks.{task}", derive=transfer_feature_args),
    threads: 1
    resources:
        mem_mb=probe_mem_mb,
        runtime=probe_runtime,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe probe --model {wildcards.model:q} --task {wildcards.task:q} --settings {params.settings:q}"
        " --id-name {params.id_name:q} --id {input.id:q} --ood {params.ood:q} --transfer {params.transfer:q}"
        " {params.head:q} --out {output:q} > {log:q} 2>&1"
