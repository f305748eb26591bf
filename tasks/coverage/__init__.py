"""Measuring coverage: whole-project runs, per-test data, filtering, test files, validation, ledger."""
