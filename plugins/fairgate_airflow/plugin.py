"""Registers the Fairness view with Airflow: the ``/fairgate`` app and its entries in the UI.

Found through the package's ``airflow.plugins`` entry point, so ``pip install fairgate[airflow]``
is all an Airflow deployment needs (nothing to copy into its plugins folder).

- "Fairness" in the navigation bar: models, production version, decisions, audit trend.
- "Fairgate report" on each DAG run: that run's report (for lifecycle runs).
"""

from airflow.plugins_manager import AirflowPlugin

from fairgate_airflow.ui import app


class FairgatePlugin(AirflowPlugin):
    name = "fairgate"

    fastapi_apps = [{"app": app, "url_prefix": "/fairgate", "name": "Fairgate fairness view"}]
    external_views = [
        {"name": "Fairness", "href": "fairgate/", "destination": "nav", "url_route": "fairness", "category": "browse"},
        {
            "name": "Fairgate report",
            "href": "fairgate/report/run/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "fairgate_report",
        },
    ]
