rule analyse:
    """Rankings per benchmark, rank agreement with bootstrap CIs, best layers and % OOD retained."""
    input:
        probe_results(),
    output:
        scores="results/scores.csv",
        summary="results/analysis/summary.json",
    log:
        "logs/analyse.log",
    params:
        settings=from_config("analyse"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe analyse --probes {input} --settings '{params.settings}'"
        " --scores {output.scores} --summary {output.summary} > {log} 2>&1"
