"""`python -m unittest discover`, plus each test's outcome as JSON: unittest has no JUnit XML.

Runs inside the sandbox with the runner's Python and the standard library only (it is copied into the
run's workspace): `python covsweep_unittest.py --discover START TOP [--discover ...] --pattern 'test*.py'
--outcomes outcomes.json --timeout 30`. Exit status 0 when every test passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import unittest

RANK = {"passed": 0, "expected_failure": 0, "skipped": 1, "failed": 2, "unexpected_success": 2, "error": 3}


class TestTimeout(BaseException):
    """Raised in a test that outlived its time; a BaseException so that `except Exception` cannot swallow it."""


class OutcomeResult(unittest.TextTestResult):
    """A text result that also keeps the worst outcome of each test id (a failed subtest fails its test)."""

    timeout_s = 30.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, str] = {}

    def _record(self, test, outcome: str) -> None:
        previous = self.outcomes.get(test.id())
        if previous is None or RANK[outcome] > RANK[previous]:
            self.outcomes[test.id()] = outcome

    def startTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s)
        super().startTest(test)

    def stopTest(self, test):
        signal.setitimer(signal.ITIMER_REAL, 0)
        super().stopTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failed")

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "expected_failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected_success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._record(test, "failed" if issubclass(err[0], test.failureException) else "error")


def _timed_out(signum, frame):
    raise TestTimeout(f"the test ran longer than {OutcomeResult.timeout_s:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--discover", nargs=2, action="append", metavar=("START", "TOP"), required=True)
    parser.add_argument("--pattern", default="test*.py")
    parser.add_argument("--outcomes", required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    # As under `python -m unittest`: the working directory is importable, this script's folder is not.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        sys.path[0] = os.getcwd()
    suite = unittest.TestSuite()
    for start, top in args.discover:
        # One loader per folder: a loader remembers the top folder of its first discovery.
        suite.addTests(unittest.TestLoader().discover(start, pattern=args.pattern, top_level_dir=top))
    OutcomeResult.timeout_s = args.timeout
    signal.signal(signal.SIGALRM, _timed_out)
    result = unittest.TextTestRunner(stream=sys.stderr, resultclass=OutcomeResult).run(suite)
    with open(args.outcomes, "w", encoding="utf-8") as handle:
        json.dump(result.outcomes, handle, indent=1, sort_keys=True)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
