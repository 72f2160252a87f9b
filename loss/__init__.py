"""Losses that torch does not have."""
