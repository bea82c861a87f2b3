"""The stages a DAG runs: the store I/O around the pure functions of the other packages.

- :mod:`.lifecycle`: ``collect``, ``validate``, ``check_bias``, ``fit_candidate``, ``train``, ``evaluate``,
  ``deploy``, ``reject``, ``record`` (and ``run_in_process``, all of them without Airflow);
- :mod:`.monitoring`: ``score`` and ``audit``, the daily and nightly stages.
"""
