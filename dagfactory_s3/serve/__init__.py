"""The read side of a release, shared by both ways of serving (no Airflow).

* :mod:`~dagfactory_s3.serve.rules` -- every serving rule: which keys, records, manifests and ``.py``
  files may be served, from which key, and DAG-id claims and the mass-delete guard;
* :mod:`~dagfactory_s3.serve.cache` -- the content cache, filled only with bytes whose sha256 was checked;
* :mod:`~dagfactory_s3.serve.versions` -- versions of an environment's releases (mapping, resolve, guard,
  claims, trees), what the versioned DAG bundle serves.

The sidecar (:mod:`dagfactory_s3.sync`) and the bundle (:mod:`dagfactory_s3.bundle`) both call these;
a change to what is served is made here, once.
"""
