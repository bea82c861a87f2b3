"""The MLflow model-from-code of a Fairgate version: ``mlflow models serve`` runs this file.

Nothing is unpickled: MLflow executes this code, which loads the version's files through
:func:`fairgate.integrations.serving.load` (the model only if its sha256 is the registered version, through
skops' trusted types), and only if the artifact store's evidence approves that version for
production (:func:`fairgate.integrations.model_server.check_approved`; start it with ``fairgate serve``,
which also checks that this very file is the model's code). A request
:mod:`fairgate.integrations.serving` refuses becomes MLflow's ``INVALID_PARAMETER_VALUE``, which
the scoring server answers with HTTP 400.

Request params (``{"dataframe_records": [...], "params": {"reasons": false}}``): ``reasons``
(default true), ``recourse`` and ``shapley`` (default false).
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR
from mlflow.pyfunc.model import PythonModel

from fairgate.errors import RequestError
from fairgate.integrations import model_server, serving


class FairgateModel(PythonModel):
    def load_context(self, context: Any) -> None:
        config = context.model_config
        try:
            self.served = serving.load(dict(context.artifacts), version=config["version"])
            model_server.check_approved(config["model_name"], config["version"])  # the store's evidence, not the alias
        except Exception as exc:  # say why in the server's log, then refuse to start
            raise MlflowException(f"Fairgate refused to load this model: {exc}") from exc

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # MLflow reads the hints
        import pandas as pd

        params = params or {}
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        try:
            return serving.answer(
                self.served,
                frame,
                reasons=bool(params.get("reasons", True)),
                recourse=bool(params.get("recourse", False)),
                shapley=bool(params.get("shapley", False)),
            )
        except RequestError as exc:
            raise MlflowException.invalid_parameter_value(str(exc)) from None
        except Exception:  # never a stack trace (file paths) in a response: in the server's log only
            logging.getLogger(__name__).exception("Fairgate could not answer a request")
            raise MlflowException(
                "Fairgate could not answer this request (an internal error, logged by the server).",
                error_code=INTERNAL_ERROR,
            ) from None


mlflow.models.set_model(FairgateModel())
