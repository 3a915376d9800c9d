"""Helpers for the fault tests: crash trials (also run by ``bench/soak.py``) and fault fakes."""
