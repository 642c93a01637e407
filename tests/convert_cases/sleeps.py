"""A DAG file that never finishes importing (Airflow's import timeout stops it)."""

import time

while True:
    time.sleep(1)
