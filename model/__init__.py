"""Models, one file each, selected by ``--model_type`` through ``model_entry.py``."""
