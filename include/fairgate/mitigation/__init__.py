"""Mitigation: which candidates are fitted when bias is found, and which one is chosen.

- :mod:`.search`: ``plan`` (candidates), ``fit`` (one candidate), ``select`` (on the validation split);
- :mod:`.fitted`: what a method fitted (``Mixture``, ``GroupThresholds``, ``RepairedInputs``), storable with skops.
"""
