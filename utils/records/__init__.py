"""The files of a run directory: the directory, config.json, status.json, metrics.csv and the
checkpoints, each written atomically and read back with a one-line error when damaged."""
