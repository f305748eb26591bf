"""pytest runs under coverage, one after the other, each in a process forked from one interpreter that
imported coverage.py and pytest once: per run what `python -m coverage run --rcfile=RC -m pytest ARGS > LOG
2>&1` does (sys.path[0], sys.argv, COVERAGE_RUN, per-test contexts), without paying each run's interpreter
start and imports (a second of each in the sandbox). Forks share the parent's hash seed: only runs meant to
differ in nothing else belong together. A run ends with os._exit once its data is saved: atexit handlers
of the code under test do not run, and threads it left behind are not waited for.

Runs inside the sandbox with the runner's Python (it is copied into the run's workspace):
`python covsweep_forked_pytest.py RUNS.json`, RUNS.json a list of {"rcfile", "log", "args"}, from the
target's root. Each run's outcome is its JUnit XML; a run that ended abnormally is named on stderr.
"""

import json
import os
import sys
import traceback
from typing import NoReturn


def _run(rcfile: str, log: str, args: list[str]) -> NoReturn:
    """In the forked child: the run, its output and any error of its own in `log`."""
    status = 1
    try:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        import coverage
        import pytest

        sys.argv = [os.path.join(os.path.dirname(pytest.__file__), "__main__.py"), *args]
        os.environ["COVERAGE_RUN"] = "true"
        measured = coverage.Coverage(config_file=rcfile)
        measured.start()
        try:
            status = int(pytest.main(args))
        finally:
            measured.stop()
            measured.save()
    except BaseException:  # noqa: BLE001 - whatever ends the run is its log's last word
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def main(runs_file: str) -> int:
    with open(runs_file) as listed:
        runs = json.load(listed)
    sys.path[0] = os.getcwd()
    # Imported once, here in the parent, after sys.path is what `python -m` gives.
    import coverage  # noqa: F401
    import pytest  # noqa: F401

    for run in runs:
        child = os.fork()
        if child == 0:
            _run(run["rcfile"], run["log"], run["args"])
        _, status = os.waitpid(child, 0)
        if os.WIFSIGNALED(status):
            print(f"{run['log']}: the run was killed by signal {os.WTERMSIG(status)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
