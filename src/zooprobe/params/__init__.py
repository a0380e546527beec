"""Settings: the params schema, cross-reference checks and settings dataclasses. Torch-free, so every job can run them."""
