rule dataset:
    """Build one dataset file: uint8 images, labels, splits, class names, sha256."""
    input:
        unpack(dataset_inputs),
    output:
        "data/datasets/{dataset}.h5",
    log:
        "logs/datasets/{dataset}.log",
    benchmark:
        "logs/benchmarks/dataset/{dataset}.tsv"
    params:
        spec=from_config("datasets.{dataset}"),
        base=base_flag,
        downloads=download_dir_flag,
    threads: rule_threads("dataset")
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe dataset --name {wildcards.dataset:q} --spec {params.spec:q} {params.base:q} {params.downloads:q}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"
