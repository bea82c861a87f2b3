"""What a model server may run: the version Fairgate's evidence approved, through Fairgate's own code.

The MLflow ``production`` alias is a mirror of Fairgate's pointer, not the authority: anyone who
can register a model version can move it, and ``mlflow models serve -m models:/<model>@production``
runs whatever code that version carries. So ``fairgate serve`` does not follow the alias:

1. the version is :func:`fairgate.governance.approval.production` (pointer and verified chain);
2. the MLflow version is the one tagged with that sha256, downloaded once into a folder;
3. that folder is checked before anything in it runs (:func:`check_folder`): a models-from-code
   pyfunc whose code file is byte for byte Fairgate's :mod:`fairgate.integrations.mlflow_model`,
   no extra code paths, the config naming this model and version;
4. the server is started on that folder, and the model's ``load_context`` asks the store again
   (:func:`check_approved`): the version must be production, and the server's state is loaded from
   the files its promotion record binds in the store, never from MLflow's copies.

A difference refuses to start with the versions named (:class:`~fairgate.errors.NotApproved`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fairgate.errors import InputError, NotApproved
from fairgate.governance import approval
from fairgate.storage.local import LocalStore
from fairgate.storage.roots import default_s3_client, open_store

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from fairgate.storage.base import ArtifactStore

MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
CODE_LOADER = "mlflow.pyfunc.loaders.code_model"


@dataclass(frozen=True)
class Prepared:
    """A checked folder, ready for ``mlflow models serve -m <folder>``."""

    model: str
    version: str  # Fairgate's sha256
    mlflow_version: str
    folder: Path


def prepare(store: ArtifactStore, model: str, mlflow: MlflowClient, dest: Path) -> Prepared:
    """Download an MLflow copy of the approved production version of ``model`` into ``dest`` and check it.

    A tag is no proof (anyone can tag a version with the sha256): of the versions tagged with it,
    the first whose folder passes :func:`check_folder` is served; none passing is refused, with why.
    """
    from mlflow.artifacts import download_artifacts

    approved = approval.production(store, model)
    if approved is None:
        raise InputError(f"Nothing of {model!r} is in production; there is nothing to serve.")
    tagged = sorted(
        (
            mv
            for mv in mlflow.search_model_versions(f"name = '{model}'", max_results=1000)
            if mv.tags.get("fairgate.sha256") == approved.version
        ),
        key=lambda mv: int(mv.version),
    )
    if not tagged:
        raise NotApproved(
            f"Production version {approved.version[:12]} of {model!r} is not registered in MLflow; "
            "`fairgate mlflow-sync` registers it."
        )
    refused = []
    for mv in tagged:
        folder = Path(  # the version's own artifact location: nothing resolved against a default registry
            download_artifacts(
                artifact_uri=mlflow.get_model_version_download_uri(model, mv.version),
                dst_path=str(dest / str(mv.version)),
                tracking_uri=mlflow.tracking_uri,
            )
        )
        try:
            check_folder(folder, model, approved.version)
        except NotApproved as exc:
            refused.append(f"MLflow version {mv.version}: {exc}")
            continue
        return Prepared(model=model, version=approved.version, mlflow_version=str(mv.version), folder=folder)
    raise NotApproved(" ".join(refused))


def check_folder(folder: Path, model: str, version: str) -> None:
    """Refuse a model folder that would run anything but Fairgate's model code for ``model`` ``version``."""
    import yaml

    where = f"MLflow's copy of {model!r} version {version[:12]} ({folder})"
    try:
        spec = yaml.safe_load((folder / "MLmodel").read_text())
        flavors = spec["flavors"]
        pyfunc = flavors["python_function"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise NotApproved(f"{where} is not an MLflow pyfunc model ({type(exc).__name__}: {exc}).") from None
    problems = []
    if set(flavors) != {"python_function"}:
        problems.append(f"flavors {sorted(flavors)}, not python_function alone")
    if pyfunc.get("loader_module") != CODE_LOADER:
        problems.append(f"loader {pyfunc.get('loader_module')!r}, not models-from-code ({CODE_LOADER})")
    if pyfunc.get("code"):
        problems.append(f"extra code paths {pyfunc.get('code')!r}")
    code = folder / Path(str(pyfunc.get("model_code_path", ""))).name
    if code.name != MODEL_CODE.name or not code.is_file() or code.read_bytes() != MODEL_CODE.read_bytes():
        problems.append(f"model code {code.name!r} that is not this release's {MODEL_CODE.name}")
    if pyfunc.get("config") != {"model_name": model, "version": version}:
        problems.append(f"config {pyfunc.get('config')!r}, not this model and version")
    if problems:
        raise NotApproved(f"{where} is not Fairgate's model: {'; '.join(problems)}. It is not served.")


def check_approved(model: str, version: str) -> tuple[ArtifactStore, approval.Approved]:
    """At server start: ``version`` is what the store's evidence approves for production of ``model``.

    The store is ``FAIRGATE_ARTIFACT_ROOT`` (``fairgate serve`` passes its own); without one, the
    server refuses to start rather than serve a version nobody checked. Returns the store (the server
    logs its decisions there and follows its production pointer) and the approval, whose bound files
    the server loads (:func:`fairgate.integrations.following.load_approved`).
    """
    root = os.environ.get("FAIRGATE_ARTIFACT_ROOT")
    if not root:
        raise NotApproved(
            f"FAIRGATE_ARTIFACT_ROOT is not set, so version {version[:12]} of {model!r} cannot be checked "
            "against the evidence; start the server with `fairgate serve`, or set it."
        )
    store = open_store(root, s3_client=default_s3_client(root))
    approved = approval.production(store, model)
    if approved is None or approved.version != version:
        named = approved.version[:12] if approved else "nothing"
        raise NotApproved(
            f"This server holds version {version[:12]} of {model!r}, but Fairgate's evidence approves {named} "
            "for production; it does not start."
        )
    return store, approved


def serve_command(prepared: Prepared, *, host: str, port: int, workers: int = 1) -> tuple[list[str], dict[str, str]]:
    """The server's command and the environment entries it needs: MLflow's scoring app for the prepared
    folder (as ``mlflow models serve --env-manager local`` would start it), behind Fairgate's optional
    bearer token (:mod:`fairgate.integrations.scoring_app`)."""
    import shlex
    import sys

    from mlflow.pyfunc import scoring_server

    command, env = scoring_server.get_cmd(
        model_uri=str(prepared.folder),
        port=port,
        host=host,  # type: ignore[arg-type]  # MLflow's hint says int; it is the host's name, as its own CLI passes
        nworkers=workers,
    )
    words = shlex.split(command)
    if words[0] != "uvicorn" or words[-1] != "mlflow.pyfunc.scoring_server.app:app":
        raise InputError(f"This MLflow starts its scoring server as {command!r}, which Fairgate does not know.")
    words[0:1] = [sys.executable, "-m", "uvicorn"]  # this environment's, with or without its console script
    words[-1:] = ["--factory", "fairgate.integrations.scoring_app:create"]
    added = {k: v for k, v in env.items() if os.environ.get(k) != v}  # the model path and request timeout
    return words, added


def environment(store: ArtifactStore) -> dict[str, str]:
    """The server's environment: this one, with the store it checks against and ``.venv/bin`` on PATH."""
    import sys

    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "FAIRGATE_ARTIFACT_ROOT": str(store.root) if isinstance(store, LocalStore) else store.root_uri,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
