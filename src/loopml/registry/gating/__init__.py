"""Promotion gates: model test suites run against a candidate version on a holdout."""
