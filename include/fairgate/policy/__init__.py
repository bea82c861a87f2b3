"""The policy file that drives every stage: its schema, loading it, and the catalog of models.

- :mod:`.schema`: every key, its type, range and default (pydantic; published as JSON Schema);
- :mod:`.loader`: ``load_policy`` / ``parse_policy`` into the ``Policy`` the code reads;
- :mod:`.estimators`: the scikit-learn estimators a policy may name (``classifier``);
- :mod:`.catalog`: one policy file per model in ``FAIRGATE_POLICIES`` (``entries``, ``find``);
- :mod:`.authoring`: ``starter_policy`` and ``check_against_data`` (``fairgate policy init|check``).
"""
