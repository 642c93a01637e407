"""A DAG file that raises while Airflow imports it."""

raise RuntimeError("this DAG file is broken on purpose")
