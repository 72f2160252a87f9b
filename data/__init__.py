"""Datasets, one file each, registered under their names (``@register_dataset``) and
selected by ``--data_type`` through ``data_entry.py``, which finds every module here."""
