"""Fairgate: a responsible-AI lifecycle for tabular models, independent of any orchestrator."""

__version__ = "0.1.0"
