"""The benchmark harness: `python -m benchmark VERB`."""
