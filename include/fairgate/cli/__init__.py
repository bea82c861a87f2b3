"""The ``fairgate`` command (:func:`fairgate.cli.main.main`)."""
