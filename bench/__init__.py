"""Benchmarks (DESIGN §9): run from the project root, e.g. `.venv/bin/python -m bench.ack_latency`."""
