"""Benchmarks of the usage reports on a synthetic platform (not tests; see bench/README.md)."""
