"""Helpers only the tests use: a headless Chromium driver and MLflow 2.22 in its own environment."""
