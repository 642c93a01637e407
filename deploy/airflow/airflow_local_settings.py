# Installed as $AIRFLOW_HOME/config/airflow_local_settings.py, which every Airflow process imports at
# start-up. Warming dagfactory-s3 here means the dag-processor manager holds the manifest checker and
# schema validator before it forks one child per DAG file, so no child imports them again
# (docs/benchmarks.md: full cycle 1.02x -> 0.91x of hand-written DAG files). Airflow-free: it does not
# import the Kubernetes client. Merge it into your own airflow_local_settings.py if you have one.
from dagfactory_s3.loader import warm

warm()
