rule icn_compare:
    """One architecture from scratch with one seed: baseline and introspective classifier, same budget."""
    input:
        data="data/datasets/{dataset}.h5",
        ood=icn_ood_datasets,
    output:
        scores="results/introspective/compare/{dataset}/{icn_arch}-s{icn_seed}.json",
        grids="results/introspective/compare/{dataset}/{icn_arch}-s{icn_seed}.npz",
    log:
        "logs/icn_compare/{dataset}/{icn_arch}-s{icn_seed}.log",
    benchmark:
        "logs/benchmarks/icn_compare/{dataset}/{icn_arch}-s{icn_seed}.tsv"
    params:
        arch=from_config("introspective.compare.architectures.{icn_arch}"),
        recipe=from_config("train"),
        settings=from_config("introspective.model"),
        epsilons=from_config("introspective.compare.fgsm_eps_255"),
        ood=from_config("introspective.compare.datasets.{dataset}", derive=icn_ood_args),
    threads: rule_threads("icn_compare")
    resources:
        mem_mb=icn_mem_mb,
        runtime=icn_runtime,
        gpu=TRAIN_GPU,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe icn-compare --dataset {wildcards.dataset:q} --arch-name {wildcards.icn_arch:q}"
        " --arch {params.arch:q} --seed {wildcards.icn_seed:q} --recipe {params.recipe:q} --settings {params.settings:q}"
        " --epsilons {params.epsilons:q} --data {input.data:q} --ood {params.ood:q} --threads {threads}"
        " --out {output.scores:q} --grids {output.grids:q} > {log:q} 2>&1"


rule icn_probe:
    """Plain and introspective probes (pseudo-negatives in feature space) on one model's frozen features."""
    input:
        id=task_id_features,
        ood=task_ood_features,
    output:
        "results/introspective/probe/{model}/{task}.json",
    log:
        "logs/icn_probe/{model}/{task}.log",
    benchmark:
        "logs/benchmarks/icn_probe/{model}/{task}.tsv"
    params:
        settings=ICN_PROBE_SETTINGS,
        id_name=from_config("probe.tasks.{task}", derive=task_id_name),
        ood=from_config("probe.tasks.{task}", derive=ood_feature_args),
    threads: 1
    resources:
        mem_mb=probe_mem_mb,
        runtime=probe_runtime,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe icn-probe --model {wildcards.model:q} --task {wildcards.task:q} --settings {params.settings:q}"
        " --id-name {params.id_name:q} --id {input.id:q} --ood {params.ood:q} --out {output:q} > {log:q} 2>&1"


rule icn_table:
    """Every ICN score in one tidy table, and a verdict per dataset and metric (paired over seeds)."""
    input:
        compare=icn_compare_results(),
        probes=icn_probe_results(),
    output:
        scores="results/introspective/scores.csv",
        summary="results/introspective/summary.json",
    log:
        "logs/icn_table.log",
    benchmark:
        "logs/benchmarks/icn_table.tsv"
    params:
        # The seeds the verdicts pair up; a changed list changes the inputs too.
        seeds=from_config("introspective.compare.seeds") if ICN_COMPARE else as_json(None),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe icn-table --compare {input.compare:q} --probes {input.probes:q}"
        " --seeds {params.seeds:q} --scores {output.scores:q} --summary {output.summary:q} > {log:q} 2>&1"
