"""Models, one file each, registered under their names (``@register_model``) and selected
by ``--model_type`` through ``model_entry.py``, which finds every module here."""
