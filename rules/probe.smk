rule probe:
    """Linear probes per layer: fit on the ID train split, C chosen on val, scored on ID test and OOD;
    and probes of its own on each transfer set (its train split, C on its val, scored on its test).
    A task with probe: head scores the model's own head instead (no probe is fitted)."""
    input:
        id=task_id_features,
        ood=task_ood_features,
        transfer=task_transfer_features,
    output:
        "results/probes/{model}/{task}.h5",
    log:
        "logs/probe/{model}/{task}.log",
    benchmark:
        "logs/benchmarks/probe/{model}/{task}.tsv"
    params:
        settings=PROBE_SETTINGS,
        id_name=from_config("probe.tasks.{task}", derive=task_id_name),
        kind=from_config("probe.tasks.{task}", derive=task_probe_kind),
        head=from_config(head_keys, "probe.tasks.{task}", derive=score_head_flag),
        published=from_config(head_keys, derive=published_flag),
        ood=from_config("probe.tasks.{task}", derive=ood_feature_args),
        transfer=from_config("probe.tasks.{task}", derive=transfer_feature_args),
    threads: rule_threads("probe")
    resources:
        mem_mb=probe_mem_mb,
        runtime=probe_runtime,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe probe --model {wildcards.model:q} --task {wildcards.task:q} --settings {params.settings:q}"
        " --kind {params.kind:q} --threads {threads} --id-name {params.id_name:q} --id {input.id:q} --ood {params.ood:q} --transfer {params.transfer:q}"
        " {params.head:q} {params.published:q} --out {output:q} > {log:q} 2>&1"
