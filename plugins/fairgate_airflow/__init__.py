"""Airflow adapters for Fairgate: one operator per lifecycle stage, plus settings and the demo.

Importing the package checks the Airflow it runs in against the range this release supports and is
tested on (:data:`SUPPORTED`): another version is refused here, by name, rather than failing later
inside a task (Airflow 3.1.0-3.1.7 also let any task answer any other task's review, CVE-2026-30911).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

SUPPORTED = (">=3.3", "<3.4")  # the pyproject extra [airflow] says the same; CI runs 3.3.2


def check_airflow(found: str) -> None:
    """Refuse an Airflow outside :data:`SUPPORTED`, naming the version found and the range."""
    from packaging.specifiers import SpecifierSet

    if found not in SpecifierSet(",".join(SUPPORTED)):
        raise ImportError(
            f"Fairgate's Airflow provider supports apache-airflow {','.join(SUPPORTED)} (tested on 3.3.2); this "
            f"Airflow is {found}. Install a supported Airflow, or the Fairgate release made for yours."
        )


def _installed_airflow() -> str | None:
    for dist in ("apache-airflow-core", "apache-airflow"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


_found = _installed_airflow()
if _found is not None:  # the domain package runs without Airflow; only its adapter needs one
    check_airflow(_found)
