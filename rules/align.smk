rule align:
    """One model against the human judgements of one alignment benchmark (RSA, odd-one-out, labels)."""
    input:
        data=benchmark_dataset,
        features=benchmark_features,
    output:
        "results/alignment/{model}/{benchmark}.json",
    log:
        "logs/align/{model}/{benchmark}.log",
    benchmark:
        "logs/benchmarks/align/{model}/{benchmark}.tsv"
    params:
        settings=ALIGN_SETTINGS,
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
        data=benchmark_dataset,
        tables=benchmark_tables,
    output:
        "results/alignment/tables/{benchmark}.json",
    log:
        "logs/align/tables/{benchmark}.log",
    benchmark:
        "logs/benchmarks/align_tables/{benchmark}.tsv"
    params:
        settings=ALIGN_SETTINGS,
        tables=from_config("align.benchmarks.{benchmark}.tables", derive=benchmark_tables),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe align-tables --benchmark {wildcards.benchmark:q} --settings {params.settings:q}"
        " --data {input.data:q} --tables {params.tables:q} --out {output:q} > {log:q} 2>&1"
