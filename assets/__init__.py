"""Dagster software-defined assets, one module per layer; each calls into `q2c`."""
