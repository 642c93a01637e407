"""``airflow-dag-sync``: the sidecar that mirrors committed releases into Airflow's dags folder.

``main`` resolves settings and runs the loop; ``reconcile`` is one cycle; ``policy`` every rule about
what may reach the dags folder (pure functions); ``state`` the memory between cycles; ``observe``
logs, metrics and health endpoints. Never imports Airflow or the publisher.
"""
