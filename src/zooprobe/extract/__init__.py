"""Stage 3, extract: layer-wise features of one model on one dataset."""
