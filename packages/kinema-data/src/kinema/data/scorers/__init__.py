"""Scorers: stages that add one score column per row (registered under the ``scorer`` kind)."""
