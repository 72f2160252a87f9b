"""The machinery of the training and evaluation loops that ``trainer.py`` and ``eval.py``
assemble: devices, precision, compile, DDP, the guard, meters, metrics, optimizers and
schedules, the run's state, log and base parser."""
