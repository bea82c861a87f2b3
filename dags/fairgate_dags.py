"""Fairgate's DAGs for every model of this deployment (``FAIRGATE_POLICIES``, else ``FAIRGATE_POLICY``)."""

from fairgate_airflow.dags import from_policies

from_policies()
