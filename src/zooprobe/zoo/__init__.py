"""Stage 2, models: the factory, architectures, checkpoints and the devices they run on."""
