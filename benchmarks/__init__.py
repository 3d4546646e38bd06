"""Benchmarks of keras_dbn (run as scripts or with python -m benchmarks.<name>)."""
