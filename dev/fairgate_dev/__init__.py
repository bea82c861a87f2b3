"""Developer tooling: ``make demo``, ``make ui`` and the embedded Airflow the tests use.

Not part of the production image (the Dockerfile copies ``include/``, ``plugins/`` and ``dags/``
only); installed into the project's ``.venv`` by ``make``.
"""
