"""The one base class for bad input, and the version stamped on every record.

Every error that means "this input is wrong" (a policy key, a data column, a protected group, a
model parameter, a stored artifact that does not match its hash, a store that is misconfigured)
subclasses :class:`InputError`. Re-running with the same input fails the same way, so the Airflow
adapters turn it into a task failure without retries; anything else (a network or storage
hiccup) propagates as it is, and task retries apply.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    CODE_VERSION = version("fairgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    CODE_VERSION = "0.0.0+source"


class InputError(ValueError):
    """Bad input; the message names the key or column, what was found and what is allowed."""


class StageError(InputError):
    """Bad input for a stage that no more specific class covers; the message names the column or key."""


class ModelParamsError(InputError):
    """``model.params`` do not fit the policy's estimator."""
