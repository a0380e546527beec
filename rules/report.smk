rule report:
    """One self-contained HTML report: config, provenance, scores, agreement and figures."""
    input:
        scores="results/scores.csv",
        summary="results/analysis/summary.json",
        icn_summary=icn_table_files()[1:],
        icn_grids=icn_grid_files(),
    output:
        "results/report/index.html",
    log:
        "logs/report.log",
    params:
        config=from_config(*config, derive=lambda wc: as_json(config)),
        settings=from_config("report"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe report --scores {input.scores} --summary {input.summary} --config '{params.config}'"
        " --settings '{params.settings}' --icn-summary {input.icn_summary} --icn-grids {input.icn_grids} --out {output} > {log} 2>&1"
