"""Airflow adapters for Fairgate: one operator per lifecycle stage, plus settings and the demo."""
