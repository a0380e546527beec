rule fetch_checkpoint:
    """Download a published checkpoint (source 'checkpoint' with checkpoint_url) and verify its sha256."""
    output:
        "data/weights/{model}.pt",
    log:
        "logs/models/{model}.log",
    benchmark:
        "logs/benchmarks/fetch_checkpoint/{model}.tsv"
    params:
        url=from_config("models.{model}.checkpoint_url", derive=checkpoint_url),
        sha256=from_config("models.{model}.checkpoint_sha256", derive=checkpoint_sha256),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe fetch-checkpoint --url {params.url:q} --sha256 {params.sha256:q}"
        " --out {output:q} > {log:q} 2>&1"
