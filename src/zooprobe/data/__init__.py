"""Stage 1, datasets: the image-set type, the registry of sources, and one module per family of sources."""
