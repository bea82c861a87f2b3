"""After deployment: scoring each day, the prediction log, and the nightly audit.

- :mod:`.scoring`: ``score_records``, decisions with reasons as the log's rows;
- :mod:`.review_triggers`: ``queue``, decisions a person looks at before they take effect;
- :mod:`.prediction_log`: every read and write of predictions, outcomes and audits (``read_window``);
- :mod:`.audit`: ``measure_window``, fairness, drift and performance of a window;
- :mod:`.served_log`: decisions served online, logged before they are answered, read and compacted;
- :mod:`.log_table`: the prediction log in a SQL table (``audit.log_table``), its writes and row reads;
- :mod:`.sql_audit`: the same figures from one ``GROUP BY`` in the database that holds the log;
- :mod:`.cases`: contested and reviewed decisions (``open_contest``, ``decide``), found in the log;
- :mod:`.retention`: ``apply``, the log's days past ``audit.retention_days`` removed and recorded;
- :mod:`.columns`: the log's shared column names.
"""
