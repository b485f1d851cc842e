"""Ingest listener benchmark: see ``python -m bench.ingest --help`` and BENCHMARKS.md."""
