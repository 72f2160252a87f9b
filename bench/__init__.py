"""Benchmark scripts: run them as modules from the project root (python -m bench.<name>)."""
