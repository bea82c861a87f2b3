"""What test modules share, importable (no test module imports another):

- :mod:`.policies`: the bundled policy, synthetic credit data with its policy, loose thresholds, ``edited``;
- :mod:`.dags`: running a DAG with ``dag.test()`` and reading its evidence;
- :mod:`.stack`: a real Airflow api-server (and scheduler) on PostgreSQL for the tests that need one;
- :mod:`.browser`: Debian's Chromium for the browser tests;
- :mod:`.pages`: hostile values and ``assert_inert``;
- :mod:`.fixtures`: small policies and frames shared by a few modules;
- :mod:`.operators`: a task instance and context for calling an operator outside Airflow.
"""
