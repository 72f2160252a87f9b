"""Tools over many runs, each also a command (``python -m utils.experiments.<name>``): ``--config``
files, the config comparator, the runs table and sweeps."""
