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
        base=lambda wc, input: f"--base {input.base}" if "base" in input.keys() else "",
        downloads=lambda wc: f"--download-dir data/downloads/{wc.dataset}",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe dataset --name {wildcards.dataset} --spec '{params.spec}' {params.base} {params.downloads}"
        " --out {output} > {log} 2>&1"
