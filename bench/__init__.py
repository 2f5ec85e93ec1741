"""Resilient's benchmarks (``python -m bench.<name>``)."""
