"""``make demo``: the main job of dagfactory-s3 on one machine, with no AWS account and no cluster.

A package publishes, and its DAG appears in a running Airflow that nobody restarted:

1. an S3 endpoint on 127.0.0.1 (moto server) with a versioned, non-public bucket;
2. the two example packages published with ``airflow-dag-publisher publish``, as their CI would;
3. ``airflow-dag-sync`` keeping ``.demo/dags`` in sync, as the sidecar does in the scheduler pod;
4. real Airflow 3 on SQLite (``airflow dag-processor`` + ``airflow api-server``) with the settings
   docs/deploy.md recommends;
5. the example DAGs printed once Airflow registered them, with the UI URL and login;
6. a new DAG and a change published while Airflow keeps running, with measured latencies.

Not shipped in the wheel: this is a repository tool. The process plumbing is in :mod:`demo.stack`,
shared with ``tests/test_e2e.py``.
"""
