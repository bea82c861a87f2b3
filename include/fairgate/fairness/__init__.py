"""Who is compared, what is measured, and the gate that judges the measurements.

- :mod:`.metrics`: ``measure``, every group metric from confusion counts, with intervals;
- :mod:`.bias`: disparity in the training data (``measure``, ``findings``) and ``reweigh``;
- :mod:`.proxies`: ``proxy_check``, how well the inputs predict each protected attribute;
- :mod:`.gate`: ``decide``, evidence in, pass / fail / review with reasons out; ``short_groups`` and
  ``short_of_evidence``, the evidence rules;
- :mod:`.estimation`: ``per_group`` TPR, FPR and accuracy estimated from scores before outcomes arrive;
- :mod:`.multiplicity`: ``exceedance_p`` and ``adjusted`` (Holm, Benjamini–Hochberg) for many tests at once;
- :mod:`.subgroups`: ``discover``, the subgroups treated most differently from the rest, under FDR control;
- :mod:`.aif360_adapter`: the one place AIF360 is called (the reference the tests check against).
"""
