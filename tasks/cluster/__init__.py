"""A run's module tasks on a Dask cluster (prefect-dask): the scheduler and its workers checked from the
flow's host (scheduler.py), and each job made the worker's own where it runs (worker.py)."""
