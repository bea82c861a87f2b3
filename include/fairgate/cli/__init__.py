"""The ``fairgate`` command.

- :mod:`.main`: ``main``, every subcommand (status, models, serve, rollback, contest, verify-log, ...);
- :mod:`.authoring`: ``starter_policy`` and ``check_against_data`` (``fairgate policy init|check``), ``next_runs``.
"""
