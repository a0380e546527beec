"""The one place that touches files: HDF5 (h5io), atomic writes, downloads with sha256."""
