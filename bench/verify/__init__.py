"""Verification throughput benchmark (see ``python -m bench.verify --help``)."""
