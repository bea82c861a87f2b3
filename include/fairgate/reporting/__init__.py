"""What people read: run and audit reports, model cards, charts and the Fairness view.

- :mod:`.report`: ``model_card``, ``run_report``, ``audit_report``, ``quality_report``;
- :mod:`.verdict`: ``verdict``, what a run decided and why in plain words (the pages open with it);
- :mod:`.charts`: the PNG charts those pages embed;
- :mod:`.overview`: the Fairness view's data (``overview``), indexed from the evidence log.

Every page is rendered from the autoescaped templates of :mod:`fairgate.pages`.
"""
