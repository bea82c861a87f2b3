"""Every error Fairgate raises on purpose, in three kinds, and the version stamped on every record.

Each error is exactly one of these kinds, and the kind says what a re-run does:

- :class:`InputError`: **bad input** (a policy key, a data column, a protected group, a request).
  Re-running with the same input fails the same way, so the Airflow adapters fail the task
  without retries. The message names the key or column, what was found and what is allowed.
- :class:`IntegrityError`: **a stored artifact was changed** since it was recorded (its sha256 no
  longer matches, or it holds what it must not). Never retried, never used; the message names
  the artifact.
- :class:`TransientError`: **a service or the store could not be reached**, or a conditional write
  lost a race. Nothing was changed; a retry may succeed, so task retries apply.

``tests/unit/test_errors.py`` walks every subclass and fails on one that is filed under none of
the kinds, or under two.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import ClassVar

try:
    CODE_VERSION = version("fairgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    CODE_VERSION = "0.0.0+source"


class FairgateError(Exception):
    """The base of every error below; ``retry`` says whether running again can help."""

    retry: ClassVar[bool]


# --- bad input: fail once, no retry --------------------------------------------------------------


class InputError(FairgateError, ValueError):
    """Bad input; the message names the key or column, what was found and what is allowed."""

    retry = False


class StageError(InputError):
    """Bad input for a stage that no more specific class covers; the message names the column or key."""


class PolicyError(InputError):
    """The policy file is missing, unreadable or does not match the schema."""


class CatalogError(InputError):
    """The policies folder cannot be read, or two files name the same model."""


class ModelParamsError(InputError):
    """``model.params`` do not fit the policy's estimator."""


class DataError(InputError):
    """The source cannot be read, or what it holds cannot be used."""


class NothingThere(DataError):
    """The location holds no data (yet): no such file or prefix, or no file of the format under it."""


class GroupError(InputError):
    """A protected column is missing, has nulls, or holds values the policy does not allow."""


class BiasInputError(InputError):
    """The data cannot be measured: a group is missing, empty, or has no favourable outcomes."""


class InsufficientDataError(InputError):
    """The data cannot support the metric (an empty group, one label class, no favorable outcome)."""


class MitigationError(InputError):
    """A candidate that cannot be fitted on these rows (e.g. a constraint the data cannot meet)."""


class RecourseError(InputError):
    """Recourse was asked for where it does not apply (a favourable decision, no actionable input)."""


class RecourseOutOfTime(RecourseError):
    """A recourse search passed the time it was given (a served request's budget)."""


class RegistryError(InputError):
    """A registry operation was refused (unknown or unapproved version, corrupt manifest)."""


class PromotionConflict(RegistryError):
    """Another promotion moved the production pointer first."""


class BundleError(InputError):
    """A bundle cannot be built (unknown version, missing evidence) or read (not a bundle)."""


class CaseError(InputError):
    """A contest that cannot be opened or decided: the message says why, and nothing was recorded."""


class RequestError(InputError):
    """A request the model cannot answer (empty, a missing column, a wrong type, an unknown category)."""


class StoreConfigError(InputError):
    """The store cannot be used as configured: an invalid key or root, access denied, a missing bucket."""


class MissingExtra(InputError):
    """The policy asks for what an optional package does and it is not installed: the message names the
    package's extra (``pip install "fairgate[explain]"``) and the policy key that asks for it."""


# --- a changed artifact: never retried, never used -----------------------------------------------


class IntegrityError(FairgateError):
    """A stored artifact's bytes no longer match the sha256 recorded when it was written."""

    retry = False


class ModelIntegrityError(IntegrityError):
    """A stored model does not match its recorded sha256, or holds types outside the allowlist."""


class EvidenceIntegrityError(IntegrityError):
    """The evidence log does not verify, or an entry, HEAD or pointer is not of its shape."""


class NotApproved(IntegrityError):
    """The version production names has no record in its model's verified chain that approves it."""


# --- unreachable or raced: retried ---------------------------------------------------------------


class TransientError(FairgateError):
    """A service or the store could not be reached, or a race was lost; nothing was changed."""

    retry = True


class StoreError(TransientError, RuntimeError):
    """An artifact could not be read or written."""


class NotFoundError(StoreError, KeyError):
    """No object at that key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConflictError(StoreError):
    """A conditional write lost: the key exists, or changed since it was read."""


class TrackingUnavailable(TransientError):
    """The tracking server could not be reached or refused a write; nothing in Fairgate changed."""


class LogUnavailable(TransientError):
    """A served decision could not be written to the prediction log, so it was not given (HTTP 503)."""


# What the Airflow adapters fail at once instead of retrying.
NOT_RETRIED: tuple[type[FairgateError], ...] = (InputError, IntegrityError)
