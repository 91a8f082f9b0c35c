"""Helpers for scripts/bench (issue 6): servers, the reference dataset, the copy methods, measuring.

Kept out of src/nightcopy on purpose: the benchmark is a developer tool that drives nightcopy from
the outside, exactly as a user would run it, and must never be imported by the worker.
"""
