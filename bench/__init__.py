"""Benchmarks: each prints machine-readable results and the command that produced them."""
