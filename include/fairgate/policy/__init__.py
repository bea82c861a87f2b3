"""The policy file that drives every stage: its schema, loading it, and the catalog of models.

- :mod:`.schema`: every key, its type, range and default (pydantic; published as JSON Schema);
- :mod:`.schema` also holds ``Policy``, the model the code reads (typed sections, one set of defaults);
- :mod:`.rules`: the rules that relate several keys (``check``, run by the schema's validator) and the
  mitigation methods' parameters (``check_params``);
- :mod:`.loader`: ``load_policy`` / ``parse_policy``, reading a file into a ``Policy``;
- :mod:`.reading`: the bounded YAML reader (size, no aliases, no duplicate keys) every policy file goes through;
- :mod:`.estimators`: the scikit-learn estimators a policy may name (``classifier``);
- :mod:`.catalog`: one policy file per model in ``FAIRGATE_POLICIES`` (``entries``, ``find``);
- :mod:`.bundled`: the names the bundled policy uses (Adult's columns, the demo's simulated feed);
- :mod:`.editing`: ``set_keys`` / ``set_in_file``: keys of a policy file changed, comments kept (``policy set``).
- :mod:`.people`: ``person`` / ``same_person``: names compared case- and space-normalised (quorums, approvers).
"""
