"""One module per `python -m benchmark` verb."""
