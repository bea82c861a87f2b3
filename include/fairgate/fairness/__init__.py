"""Who is compared, what is measured, and the gate that judges the measurements.

- :mod:`.groups`: ``group_codes`` (privileged 1/0 per attribute) and ``comparisons`` (pairs of groups);
- :mod:`.metrics`: ``measure``, every group metric from confusion counts, with intervals;
- :mod:`.bias`: disparity in the training data (``measure``, ``findings``) and ``reweigh``;
- :mod:`.gate`: ``decide``, evidence in, pass / fail / review with reasons out;
- :mod:`.estimation`: ``per_group`` TPR, FPR and accuracy estimated from scores before outcomes arrive;
- :mod:`.multiplicity`: ``exceedance_p`` and ``adjusted`` (Holm, Benjamini–Hochberg) for many tests at once;
- :mod:`.subgroups`: ``discover``, the subgroups treated most differently from the rest, under FDR control;
- :mod:`.aif360_adapter`: the one place AIF360 is called (the reference the tests check against).
"""
