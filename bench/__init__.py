"""Benchmarks of dagfactory-s3 against the alternatives, run with real Airflow (``python -m bench``)."""
