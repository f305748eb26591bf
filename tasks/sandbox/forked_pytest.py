"""pytest runs under coverage, one after the other, each in a process forked from one interpreter that
imported coverage.py and pytest once: what `python -m coverage run --rcfile=RC -m pytest ARGS > LOG` does
per run, without paying each run's interpreter start and imports (a second of each in the sandbox).
Forks share the parent's hash seed: only runs meant to differ in nothing else belong together.

Runs inside the sandbox with the runner's Python (it is copied into the run's workspace):
`python covsweep_forked_pytest.py RUNS.json`, RUNS.json a list of {"rcfile", "log", "args"}. From the
target's root, which is sys.path[0] as under `python -m`. Exit status 0; each run's outcome is its JUnit XML.
"""

import json
import os
import sys


def _run(rcfile: str, log: str, args: list[str]) -> None:
    """In the forked child: the run, its output in `log`; never returns."""
    import coverage
    import pytest

    status = 70
    try:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        measured = coverage.Coverage(config_file=rcfile)
        measured.start()
        try:
            status = int(pytest.main(args))
        finally:
            measured.stop()
            measured.save()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def main(runs_file: str) -> int:
    sys.path[0] = os.getcwd()
    # Imported once, here in the parent, after sys.path is what `python -m` gives.
    import coverage  # noqa: F401
    import pytest  # noqa: F401

    with open(runs_file) as runs:
        for run in json.load(runs):
            child = os.fork()
            if child == 0:
                _run(run["rcfile"], run["log"], run["args"])
            os.waitpid(child, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
