"""A DAG file that loops forever while Airflow imports it (Airflow's import timeout stops it)."""

n = 0
while True:
    n += 1
