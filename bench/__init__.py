"""Benchmarks: ``python -m bench`` measures indexing and answering speed and scale, prints tables
and records the results in BENCHMARKS.md. They print numbers; they are not timed tests."""
