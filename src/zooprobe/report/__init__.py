"""Stage 6, report: the HTML report."""
