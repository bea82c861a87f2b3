"""Where every stage writes what it produced: one interface, a local and an S3 backend.

- :mod:`.base`: the :class:`~fairgate.storage.base.ArtifactStore` protocol, its errors, sha256
  checks (``verify``, ``get_verified``) and ``read_recorded``;
- :mod:`.local`: ``LocalStore`` (files, atomic renames, a lock per key);
- :mod:`.s3`: ``S3Store`` (conditional PUTs, multipart uploads);
- :mod:`.roots`: ``open_store``, the store a root (local path, ``file://`` or ``s3://``) names.
"""
