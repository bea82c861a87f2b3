"""Bad input is one kind of error, named by key or column, whichever stage finds it."""

from __future__ import annotations

import pandas as pd
import pytest

from fairgate.errors import InputError, ModelParamsError
from fairgate.fairness.groups import GroupError, privileged_codes
from fairgate.policy.loader import ProtectedAttribute


def test_every_bad_input_error_of_the_domain_is_an_input_error():
    from fairgate.data.sources import DataError
    from fairgate.errors import StageError
    from fairgate.fairness.aif360_adapter import InsufficientDataError
    from fairgate.governance.registry import PromotionConflict, RegistryError
    from fairgate.models.training import ModelIntegrityError
    from fairgate.policy.loader import PolicyError
    from fairgate.storage.s3 import S3ConfigError

    for cls in (InsufficientDataError, DataError, StageError, PolicyError, PromotionConflict, RegistryError,
                S3ConfigError, ModelIntegrityError, GroupError, ModelParamsError):
        assert issubclass(cls, InputError), cls
    from fairgate.storage.base import ConflictError, NotFoundError, StoreError

    for cls in (StoreError, ConflictError, NotFoundError):  # storage trouble may pass on a retry
        assert not issubclass(cls, InputError), cls


@pytest.mark.parametrize("params,named", [
    ({"max_iter": 100, "C_value": 1.0}, "C_value"),   # a key the estimator does not take
    ({"max_iter": 100, "C": -1.0}, "'C' parameter"),  # a value outside the estimator's range
    ({"max_iter": "many"}, "'max_iter' parameter"),   # a value of the wrong type
])
def test_model_params_that_do_not_fit_the_estimator_are_named_before_training(params, named):
    from tests.unit.test_explain import _tiny_policy

    from fairgate.models.training import build_pipeline

    policy = _tiny_policy()
    from dataclasses import replace

    with pytest.raises(ModelParamsError, match=r"Policy key 'model.params' does not fit logistic_regression") as e:
        build_pipeline(replace(policy, estimator_params=params))
    assert named in str(e.value)


def test_privileged_if_on_a_text_column_names_the_column_and_the_fix():
    attr = ProtectedAttribute(column="region", op=">=", value=3.0)
    with pytest.raises(GroupError, match=r"'region' uses 'privileged_if' \(>= 3\), which needs a numeric column; "
                                         r"it holds \w+ values"):
        privileged_codes(pd.DataFrame({"region": ["north", "south"]}), attr)
    codes = privileged_codes(pd.DataFrame({"region": [1, 3, 5]}), attr)  # numbers still work
    assert codes.tolist() == [0, 1, 1]
