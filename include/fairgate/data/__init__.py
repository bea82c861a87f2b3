"""The data a run reads and what it checks about it, before any model.

- :mod:`.sources`: ``read_source`` (bundled, local, ``s3://``, ``sql://``) and ``to_parquet_bytes``;
- :mod:`.quality`: ``validate_frame``, a Great Expectations suite built from the policy;
- :mod:`.datasheet`: ``datasheet``, the snapshot in Gebru et al.'s sections;
- :mod:`.features`: ``feature_frame``, the policy's input columns as every model reads them;
- :mod:`.sampling`: ``stratified`` samples and how a figure says it was measured on one;
- :mod:`.adult`: the bundled UCI Adult files and ``read_adult``; :mod:`.simulation`: the demo's simulated daily feed.
"""
