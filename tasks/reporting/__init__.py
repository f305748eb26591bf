"""The run's report: conclusion, totals, the JSON file and the artifacts."""
