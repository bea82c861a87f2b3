"""Where every stage writes what it produced: one interface, a local and an S3 backend.

- :mod:`.base`: the :class:`~fairgate.storage.base.ArtifactStore` protocol, its errors, sha256
  checks (``verify``, ``get_verified``) and ``read_recorded``;
- :mod:`.local`: ``LocalStore`` (files, atomic renames, a lock per key);
- :mod:`.s3`: ``S3Store`` (conditional PUTs, multipart uploads);
- :mod:`.roots`: ``open_store``, the store a root (local path, ``file://`` or ``s3://``) names;
- :mod:`.signing`: the evidence key and the MACs made with it, one label per kind of thing signed;
- :mod:`.anchor`: each evidence chain's HEAD kept a second time outside the store (a SQL table);
- :mod:`.layout`: where each kind of artifact lives (``day_prefix``, ``run_prefix``, ``safe``): every key spelled once.
"""
