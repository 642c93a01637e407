"""``airflow-dag-publisher``: what a package's CI runs. Never imports Airflow (only ``render`` loads
the factory) and never imports the sidecar (:mod:`dagfactory_s3.sync`).

``cli`` parses and reports; ``local`` holds the commands that need no S3 (generate, validate, render,
schema); ``remote`` the ones that do (publish, plan, list, rollback, retire, iam-policy). The commands
parse flags, call the domain with plain values and draw its plain data (``terminal``: flags, text or
JSON, progress). The domain: ``transaction`` (a publish as a transaction on one package prefix),
``diff`` (what a plan changes, DAG by DAG and field by field), ``status`` (whether S3 agrees with a
release record), ``history`` (the kept releases, rollbacks marked), ``store`` (the only code that
writes to that prefix), ``scan`` (a directory of manifests) and ``iam``.
"""
