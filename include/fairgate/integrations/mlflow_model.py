"""The MLflow model-from-code of a Fairgate version: ``mlflow models serve`` runs this file.

Nothing is unpickled: MLflow executes this code, which loads the version from the files its
promotion record binds in the artifact store (:func:`fairgate.integrations.following.load_approved`: the
model through skops' trusted types), and only if the store's evidence approves that version for
production (:func:`fairgate.integrations.model_server.check_approved`; start it with ``fairgate serve``,
which also checks that this very file is the model's code). A request
:mod:`fairgate.integrations.serving` refuses becomes MLflow's ``INVALID_PARAMETER_VALUE``, which
the scoring server answers with HTTP 400.

Request params (``{"dataframe_records": [...], "params": {"reasons": false}}``): ``reasons``
(default true), ``recourse`` and ``shapley`` (default false).

Every answered decision is first written to the prediction log
(:mod:`fairgate.monitoring.served_log`); one that cannot be is answered as ``audit.on_log_failure``
says (``refuse``: HTTP 503). The server follows production
(:mod:`fairgate.integrations.following`): every ``FAIRGATE_FOLLOW_SECONDS`` (default 10; 0: never) it
looks at the store's pointer and swaps to the version a deployment or rollback put there.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE
from mlflow.pyfunc.model import PythonModel

from fairgate.errors import LogUnavailable, RequestError
from fairgate.integrations import model_server, serving
from fairgate.integrations.following import Follower, load_approved
from fairgate.monitoring.served_log import DecisionLogger
from fairgate.storage.base import verify

FOLLOW_SECONDS = 10.0


class FairgateModel(PythonModel):
    def load_context(self, context: Any) -> None:
        config = context.model_config
        try:
            # MLflow's copy of the model file is not what is served, but one that differs is a tamper sign.
            copy = Path(dict(context.artifacts).get("model.skops", ""))
            verify(copy.read_bytes(), config["version"], where=f"MLflow's copy of the model file ({copy.name})")
            # The evidence, not the alias; and the store's bound files, not MLflow's copies of them.
            store, approved = model_server.check_approved(config["model_name"], config["version"])
            workdir = Path(tempfile.mkdtemp(prefix="fairgate-follow-"))
            served = load_approved(store, config["model_name"], workdir, approved)
            every = float(os.environ.get("FAIRGATE_FOLLOW_SECONDS", FOLLOW_SECONDS))
        except Exception as exc:  # say why in the server's log, then refuse to start
            raise MlflowException(f"Fairgate refused to load this model: {exc}") from exc
        self.follower = Follower(served, store, config["model_name"], workdir=workdir)
        if every > 0:
            self.follower.start(every)
        self.loggers: dict[str, DecisionLogger] = {}  # by policy: a version swapped to may log elsewhere
        self.store = store

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # MLflow reads the hints
        import pandas as pd

        params = params or {}
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        served = self.follower.served  # this request's version, whatever a swap does meanwhile
        try:
            decided = serving.decide(
                served,
                frame,
                reasons=bool(params.get("reasons", True)),
                recourse=bool(params.get("recourse", False)),
                shapley=bool(params.get("shapley", False)),
            )
            logger = self.loggers.get(served.policy.sha256)
            if logger is None:
                logger = self.loggers[served.policy.sha256] = DecisionLogger.for_policy(served.policy, self.store)
            decided.answer["logged"] = logger.log(decided.log, decided.day)
            return decided.answer
        except RequestError as exc:
            raise MlflowException.invalid_parameter_value(str(exc)) from None
        except LogUnavailable as exc:
            raise MlflowException(str(exc), error_code=TEMPORARILY_UNAVAILABLE) from None
        except Exception:  # never a stack trace (file paths) in a response: in the server's log only
            logging.getLogger(__name__).exception("Fairgate could not answer a request")
            raise MlflowException(
                "Fairgate could not answer this request (an internal error, logged by the server).",
                error_code=INTERNAL_ERROR,
            ) from None


mlflow.models.set_model(FairgateModel())
