# zooprobe: does a model's ranking hold up? See README.md.
# Run another params file with: snakemake --configfile FILE --replace-workflow-config
from snakemake.utils import min_version, validate

min_version("8.20")


configfile: "params.yaml"


validate(config, "schemas/params.schema.yaml")


# `snakemake --report report.zip` after a run: Snakemake's own report, beside zooprobe's page.
report: "docs/report/workflow.rst"


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/datasets.smk"
include: "rules/models.smk"
include: "rules/train.smk"
include: "rules/extract.smk"
include: "rules/probe.smk"
include: "rules/align.smk"
include: "rules/dense.smk"
include: "rules/introspective.smk"
include: "rules/analyse.smk"
include: "rules/report.smk"


rule all:
    input:
        all_targets(),
