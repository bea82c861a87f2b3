"""The model: training, evaluation on the test rows, and what it says about its decisions.

- :mod:`.training`: ``train_candidate``, ``dump_model`` / ``load_model_bytes`` (skops, sha256-checked);
- :mod:`.evaluation`: ``evaluate``, the candidate on the held-out test rows;
- :mod:`.explain`: ``importance`` and ``reason_codes``;
- :mod:`.shapley`: ``explain``, each input's Shapley value (exact for linear and tree models), and its ``summary``;
- :mod:`.robustness`: ``stability`` under noise and ``counterfactual`` group flips;
- :mod:`.recourse`: ``compute``, the least-cost change of actionable inputs, and its ``audit``.
"""
