"""Earlier runs read back from Prefect: stored reports, sweeps and the coverage trend."""
