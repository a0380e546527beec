rule align:
    """One model against the human judgements of one alignment benchmark (RSA, odd-one-out, labels)."""
    input:
        data=lambda wc: f"data/datasets/{ALIGN_BENCHMARKS[wc.benchmark]['dataset']}.h5",
        features=lambda wc: feature_file(wc.model, ALIGN_BENCHMARKS[wc.benchmark]["dataset"]),
    output:
        "results/alignment/{model}/{benchmark}.json",
    log:
        "logs/align/{model}/{benchmark}.log",
    params:
        settings=from_config(*ALIGN_SETTINGS, derive=align_settings),
    threads: 1
    resources:
        mem_mb=align_mem_mb,
        runtime=20,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe align --model {wildcards.model:q} --benchmark {wildcards.benchmark:q}"
        " --settings {params.settings:q} --data {input.data:q} --features {input.features:q} --out {output:q} > {log:q} 2>&1"


rule align_tables:
    """Published prediction tables against human label distributions (e.g. CIFAR-10H)."""
    input:
        data=lambda wc: f"data/datasets/{ALIGN_BENCHMARKS[wc.benchmark]['dataset']}.h5",
        tables=lambda wc: expand_path(ALIGN_BENCHMARKS[wc.benchmark]["tables"]),
    output:
        "results/alignment/tables/{benchmark}.json",
    log:
        "logs/align/tables/{benchmark}.log",
    params:
        settings=from_config(*ALIGN_SETTINGS, derive=align_settings),
        tables=from_config("align.benchmarks.{benchmark}.tables",
                           derive=lambda wc: expand_path(ALIGN_BENCHMARKS[wc.benchmark]["tables"])),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe align-tables --benchmark {wildcards.benchmark:q} --settings {params.settings:q}"
        " --data {input.data:q} --tables {params.tables:q} --out {output:q} > {log:q} 2>&1"
