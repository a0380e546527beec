"""Stage 5, analyse: statistics, score tables, rankings and their agreement, ImageNot, tunnel effect, verdicts."""
