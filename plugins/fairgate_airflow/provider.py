"""What ``airflow providers list`` shows of Fairgate (the ``apache_airflow_provider`` entry point).

The Fairness view is registered through the ``airflow.plugins`` entry point
(:mod:`fairgate_airflow.plugin`), which Airflow loads in every component; it is not repeated here,
where it would be registered a second time when providers are loaded eagerly.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any


def get_provider_info() -> dict[str, Any]:
    try:
        installed = version("fairgate")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        installed = "0+source"
    return {
        "package-name": "fairgate",
        "name": "Fairgate",
        "description": "A responsible-AI lifecycle for Airflow: data quality, bias checks and mitigation, a fairness "
        "gate, an evidence-backed registry, scoring and audits of every decision.",
        "versions": [installed],
        "integrations": [
            {
                "integration-name": "Fairgate",
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": "Fairgate", "python-modules": ["fairgate_airflow.operators"]}],
        "notifications": ["fairgate_airflow.notifiers.ArtifactStoreAlertNotifier"],
    }
