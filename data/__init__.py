"""Datasets, one file each, selected by ``--data_type`` through ``data_entry.py``."""
