rule dataset:
    """Build one dataset file: uint8 images, labels, splits, class names, sha256."""
    input:
        unpack(dataset_inputs),
    output:
        "data/datasets/{dataset}.h5",
    log:
        "logs/datasets/{dataset}.log",
    params:
        spec=from_config("datasets.{dataset}"),
        base=lambda wc, input: ["--base", input.base] if "base" in input.keys() else [],
        downloads=lambda wc: ["--download-dir", f"data/downloads/{wc.dataset}"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe dataset --name {wildcards.dataset:q} --spec {params.spec:q} {params.base:q} {params.downloads:q}"
        " --out {output:q} > {log:q} 2>&1"
