"""Workflow plumbing: the DVC sync of the Snakemake DAG, and the config-key machinery of the rules."""
