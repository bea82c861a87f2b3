"""What was decided, by whom, and proof that nothing was changed since.

- :mod:`.evidence`: the hash-chained, append-only evidence log (``append``, ``verify``);
- :mod:`.records`: a lifecycle run's record, typed (``LifecycleRecord.from_json`` / ``to_json``);
- :mod:`.registry`: model versions and the production pointer (``register``, ``promote``, ``read_pointer``);
- :mod:`.approval`: whether production's version may be used: only what the chain approved
  (``production``), and deploying evidence first (``deploy_recorded``);
- :mod:`.incidents`: incident records with their reporting clocks (``open_incident``, ``close``,
  ``sweep``) and the post-market monitoring plan (``monitoring_plan``);
- :mod:`.bundle`: release bundles an auditor checks offline (``build``, ``verify``);
- :mod:`.annex_iv`: where each EU AI Act Annex IV item is answered; :mod:`.lineage`: lineage facets.
"""
