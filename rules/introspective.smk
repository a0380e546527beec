rule icn_compare:
    """One architecture from scratch with one seed: baseline and introspective classifier, same budget."""
    input:
        data="data/datasets/{dataset}.h5",
        ood=lambda wc: [f"data/datasets/{name}.h5" for name in ICN_COMPARE["datasets"][wc.dataset].get("ood", [])],
    output:
        scores="results/introspective/compare/{dataset}/{icn_arch}-s{icn_seed}.json",
        grids="results/introspective/compare/{dataset}/{icn_arch}-s{icn_seed}.npz",
    log:
        "logs/icn_compare/{dataset}/{icn_arch}-s{icn_seed}.log",
    params:
        arch=from_config("introspective.compare.architectures.{icn_arch}"),
        recipe=from_config("train"),
        settings=from_config("introspective.model"),
        epsilons=from_config("introspective.compare.fgsm_eps_255"),
        ood=from_config("introspective.compare.datasets.{dataset}", derive=lambda wc: " ".join(
            f"{name}=data/datasets/{name}.h5" for name in ICN_COMPARE["datasets"][wc.dataset].get("ood", [])
        )),
    threads: 1
    resources:
        mem_mb=icn_mem_mb,
        runtime=icn_runtime,
        gpu=gpu_wanted(config["train"].get("device", "auto")),
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe icn-compare --dataset {wildcards.dataset} --arch-name {wildcards.icn_arch}"
        " --arch '{params.arch}' --seed {wildcards.icn_seed} --recipe '{params.recipe}' --settings '{params.settings}'"
        " --epsilons '{params.epsilons}' --data {input.data} --ood {params.ood} --threads {threads}"
        " --out {output.scores} --grids {output.grids} > {log} 2>&1"


rule icn_probe:
    """Plain and introspective probes (pseudo-negatives in feature space) on one model's frozen features."""
    input:
        id=lambda wc: feature_file(wc.model, TASKS[wc.task]["id"]),
        ood=lambda wc: [feature_file(wc.model, name) for name in TASKS[wc.task].get("ood", [])],
    output:
        "results/introspective/probe/{model}/{task}.json",
    log:
        "logs/icn_probe/{model}/{task}.log",
    params:
        settings=from_config(*ICN_PROBE_SETTINGS, derive=icn_probe_settings),
        id_name=from_config("probe.tasks.{task}", derive=lambda wc: TASKS[wc.task]["id"]),
        ood=from_config("probe.tasks.{task}", derive=ood_feature_args),
    threads: 1
    resources:
        mem_mb=probe_mem_mb,
        runtime=probe_runtime,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe icn-probe --model {wildcards.model} --task {wildcards.task} --settings '{params.settings}'"
        " --id-name {params.id_name} --id {input.id} --ood {params.ood} --out {output} > {log} 2>&1"


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
        "python -m zooprobe icn-table --compare {input.compare} --probes {input.probes}"
        " --seeds '{params.seeds}' --scores {output.scores} --summary {output.summary} > {log} 2>&1"
