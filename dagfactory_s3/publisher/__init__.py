"""``airflow-dag-publisher``: what a package's CI runs. Never imports Airflow (only ``render`` loads
the factory) and never imports the sidecar (:mod:`dagfactory_s3.sync`).

``cli`` parses and reports; ``local`` holds the commands that need no S3 (generate, validate, render,
schema); ``remote`` the ones that do (publish, plan, list, rollback, retire, iam-policy), built on
``transaction`` (a publish as a transaction on one package prefix), ``store`` (the only code that
writes to that prefix), ``scan`` (a directory of manifests) and ``iam``.
"""
