rule cka:
    """Linear CKA between the models of one task at their selected layers, on each of its sets, and
    between each model's layers on the ID test rows (feature space, streamed: no N x N Gram matrix)."""
    input:
        probes=cka_probe_files,
        features=cka_feature_files,
    output:
        "results/analysis/cka/{task}.json",
    log:
        "logs/cka/{task}.log",
    benchmark:
        "logs/benchmarks/cka/{task}.tsv"
    params:
        probes=cka_probe_args,
        # Which sets: the task's ID and OOD sets.
        features=from_config("probe.tasks.{task}", derive=cka_feature_args),
        estimator=from_config(cka_estimator_keys, derive=cka_estimator),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe cka --task {wildcards.task:q} --probes {params.probes:q} --features {params.features:q}"
        " --estimator {params.estimator:q} --out {output:q} > {log:q} 2>&1"


rule analyse:
    """Rankings per benchmark, rank agreement with bootstrap CIs, best layers and % OOD retained."""
    input:
        probes=probe_results(),
        alignment=alignment_results(),
        dense=dense_results(),
        cka=cka_results(),
    output:
        scores=report("results/scores.csv", caption="../docs/report/scores.rst", category="Scores"),
        summary="results/analysis/summary.json",
    log:
        "logs/analyse.log",
    benchmark:
        "logs/benchmarks/analyse.tsv"
    params:
        settings=from_config("analyse"),
        # The ImageNot sweep, to group its models by architecture, dataset and seed.
        sweep=from_config("sweep") if "sweep" in config else as_json(None),
        # Which models are seeds of one unit, which test sets share rows, which models are random-init copies.
        design=from_config(analysis_design_config_keys, derive=analysis_design_json),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe analyse --probes {input.probes:q} --alignment {input.alignment:q} --dense {input.dense:q}"
        " --settings {params.settings:q}"
        " --sweep {params.sweep:q} --design {params.design:q} --cka {input.cka:q}"
        " --scores {output.scores:q} --summary {output.summary:q} > {log:q} 2>&1"
