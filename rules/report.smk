rule report:
    """One self-contained HTML report: config, provenance, scores, agreement and figures."""
    input:
        scores="results/scores.csv",
        summary="results/analysis/summary.json",
        icn_summary=icn_table_files()[1:],
        icn_grids=icn_grid_files(),
    output:
        report("results/report/index.html", caption="../docs/report/report.rst", category="Report"),
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmarks/report.tsv"
    params:
        # Every section but execution: how the jobs ran is not part of what the report reports.
        config=from_config(*SCIENCE_SECTIONS, derive=science_config_json),
        settings=from_config("report"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/zooprobe.yaml"
    shell:
        "python -m zooprobe report --scores {input.scores:q} --summary {input.summary:q} --config {params.config:q}"
        " --settings {params.settings:q} --icn-summary {input.icn_summary:q} --icn-grids {input.icn_grids:q} --out {output:q} > {log:q} 2>&1"
