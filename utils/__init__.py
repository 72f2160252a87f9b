"""Helpers below the loop: the project imports them, they import nothing of it.

The small helpers sit here (errors, atomic writes, the command line, the registry, seeding,
signals, tables, plots); three folders hold the rest, each importing only from those below it:

- ``records/``: the files of a run directory, written and read back (the directory itself,
  config.json, status.json, metrics.csv, checkpoints);
- ``experiments/``: tools over many runs (``--config`` files, the config comparator, the runs
  table, sweeps), built on the records;
- ``loop/``: the machinery of training and evaluation (devices, precision, compile, DDP, the
  guard, meters, metrics, optimizers and schedules, the run's state and log, the base parser).
"""
