"""The one place that touches files: HDF5 (h5io) and the records read from it, atomic writes, downloads with sha256."""
