"""Errors come in three kinds (bad input, a changed artifact, transient); bad input is named by key or column."""

from __future__ import annotations

import importlib
import pkgutil

import pandas as pd
import pytest

from fairgate.errors import (
    NOT_RETRIED,
    FairgateError,
    GroupError,
    InputError,
    InsufficientDataError,
    IntegrityError,
    ModelParamsError,
    TransientError,
)
from fairgate.groups import privileged_codes
from fairgate.policy.schema import ProtectedAttribute


def _domain_modules():
    import fairgate

    return [
        importlib.import_module(m.name)
        for m in pkgutil.walk_packages(fairgate.__path__, "fairgate.")
        if not m.name.startswith("fairgate.integrations.mlflow_model")
    ]  # MLflow's entry file, no errors


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


KINDS = (InputError, IntegrityError, TransientError)


def test_every_error_of_the_domain_is_exactly_one_kind():
    """Walk every error class Fairgate defines: each is bad input, a changed artifact or transient, never
    two or none, and ``retry`` says what its kind says (so a new class cannot be misfiled)."""
    for module in _domain_modules():
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__.startswith("fairgate"):
                assert issubclass(obj, FairgateError), f"{obj.__module__}.{name} is not a FairgateError"
    found = list(_subclasses(FairgateError))
    assert len(found) >= 25
    for cls in found:
        kinds = [k.__name__ for k in KINDS if issubclass(cls, k)]
        assert len(kinds) == 1, f"{cls.__name__} is filed under {kinds or 'no kind'}"
        assert cls.retry is issubclass(cls, TransientError), cls
        assert issubclass(cls, NOT_RETRIED) is (not cls.retry), cls


def test_the_kinds_that_fail_at_once_and_the_kinds_that_retry():
    from fairgate.errors import (
        ConflictError,
        DataError,
        ModelIntegrityError,
        NotFoundError,
        PolicyError,
        PromotionConflict,
        RegistryError,
        StageError,
        StoreConfigError,
        StoreError,
        TrackingUnavailable,
    )

    for cls in (
        InsufficientDataError,
        DataError,
        StageError,
        PolicyError,
        PromotionConflict,
        RegistryError,
        StoreConfigError,
        GroupError,
        ModelParamsError,
    ):
        assert issubclass(cls, InputError), cls
    assert issubclass(ModelIntegrityError, IntegrityError) and not issubclass(ModelIntegrityError, InputError)
    for cls in (StoreError, ConflictError, NotFoundError, TrackingUnavailable):  # may pass on a retry
        assert not issubclass(cls, InputError), cls
        assert issubclass(cls, TransientError), cls


def test_a_key_that_leaves_the_store_is_refused_as_bad_input_not_retried(tmp_path):
    """``../`` in a key is not the store being down: it fails at once, naming the key."""
    from fairgate.storage.local import LocalStore

    with pytest.raises(InputError, match=r"Invalid artifact key '\.\./x'"):
        LocalStore(tmp_path).get("../x")


@pytest.mark.parametrize(
    "params,named",
    [
        ({"max_iter": 100, "C_value": 1.0}, "C_value"),  # a key the estimator does not take
        ({"max_iter": 100, "C": -1.0}, "'C' parameter"),  # a value outside the estimator's range
        ({"max_iter": "many"}, "'max_iter' parameter"),  # a value of the wrong type
    ],
)
def test_model_params_that_do_not_fit_the_estimator_are_named_before_training(params, named):
    from tests.support.fixtures import tiny_policy

    from fairgate.models.training import build_pipeline

    policy = tiny_policy()
    unchecked = policy.model_copy(update={"model": policy.model.model_copy(update={"params": params})})
    with pytest.raises(ModelParamsError, match=r"Policy key 'model.params' does not fit logistic_regression") as e:
        build_pipeline(unchecked)
    assert named in str(e.value)


def test_privileged_if_on_a_text_column_names_the_column_and_the_fix():
    attr = ProtectedAttribute(column="region", privileged_if={"op": ">=", "value": 3.0})
    with pytest.raises(
        GroupError,
        match=r"'region' uses 'privileged_if' \(>= 3\), which needs a numeric column; "
        r"it holds \w+ values",
    ):
        privileged_codes(pd.DataFrame({"region": ["north", "south"]}), attr)
    codes = privileged_codes(pd.DataFrame({"region": [1, 3, 5]}), attr)  # numbers still work
    assert codes.tolist() == [0, 1, 1]
