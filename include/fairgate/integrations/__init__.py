"""Fairgate seen from other tools: MLflow tracking and registry, and online serving.

- :mod:`.tracking`: ``track`` / ``sync``, runs, versions and the production alias, derived from the evidence;
- :mod:`.serving`: ``load`` and ``decide``, one registered version answering requests;
- :mod:`.following`: ``Follower``, a running server swapping to the version production moves to;
- :mod:`.model_server`: what ``fairgate serve`` may run: the approved version, through Fairgate's own code;
- :mod:`.mlflow_model`: the model-from-code file ``mlflow models serve`` runs;
- :mod:`.scoring_app`: MLflow's scoring app behind an optional bearer token (what ``fairgate serve`` starts).
"""
