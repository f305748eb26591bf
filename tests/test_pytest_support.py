"""How covsweep runs pytest and reads a run back: each test's node id and outcome, in the order they ran,
from a real pytest run in a subprocess (no sandbox): the node ids run those tests again; runs forked from
one interpreter record what separate `coverage run -m pytest` processes do; the JSON reporter writes what
`coverage json` does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tasks.core.models import ProjectRef
from tasks.coverage.data import coverage_by_test, write_rcfile
from tasks.sandbox.pytest_support import (
    coverage_json_command,
    forked_coverage_command,
    junit_node_ids,
    junit_outcomes,
    pytest_args,
    pytest_options,
)
from tests.helpers import write_project

SUITE = {
    "tests/test_b.py": """\
        import pytest


        @pytest.mark.parametrize("x", [1, 2])
        def test_param(x):
            assert x == 1


        class TestGroup:
            def test_in_class(self):
                assert True
        """,
    "tests/sub/test_a.py": "def test_fails():\n    assert False\n",
}


def run(root, *args: str) -> list[tuple[str, bool]]:
    junit = root / "junit.xml"
    command = f'"{sys.executable}" {pytest_args(list(args), junit)}'
    subprocess.run(command, shell=True, cwd=root, capture_output=True, check=False)
    return junit_node_ids(junit)


def test_node_ids_and_outcomes_come_back_in_the_order_the_tests_ran(tmp_path):
    root = write_project(tmp_path / "suite", SUITE)

    ran = run(root, "tests")

    assert ran == [
        ("tests/sub/test_a.py::test_fails", False),
        ("tests/test_b.py::test_param[1]", True),
        ("tests/test_b.py::test_param[2]", False),
        ("tests/test_b.py::TestGroup::test_in_class", True),
    ]


def test_the_node_ids_run_those_tests_again_in_the_order_given(tmp_path):
    root = write_project(tmp_path / "suite", SUITE)

    ran = run(root, "tests/test_b.py::TestGroup::test_in_class", "tests/sub/test_a.py::test_fails")

    assert ran == [("tests/test_b.py::TestGroup::test_in_class", True), ("tests/sub/test_a.py::test_fails", False)]


FORKED = {
    "pkg/__init__.py": "",
    "pkg/calc.py": """\
        def sign(x):
            if x < 0:
                return -1
            return 1 if x else 0
        """,
    # Below the root, which only sys.path[0] as `python -m` sets it puts on the path (pytest adds tests/).
    "tests/test_calc.py": """\
        import os
        import sys

        from pkg.calc import sign


        def test_negative():
            assert sign(-2) == -1


        def test_zero_and_hash():
            assert sign(0) == 0
            assert hash("covsweep") == int(os.environ["EXPECTED_HASH"])


        def test_run_as_coverage_runs_pytest():
            assert sys.argv[0].endswith(os.path.join("pytest", "__main__.py"))
            assert os.environ["COVERAGE_RUN"] == "true"
        """,
    "tests/test_dies.py": """\
        import os


        def test_ends_the_interpreter():
            os._exit(3)
        """,
}


def measured_alone(root, name: str) -> tuple[dict[str, bool], dict]:
    """What plain `coverage run -m pytest` gives for one test file: outcomes and each test's coverage."""
    folder = root / f"plain-{Path(name).name}"
    folder.mkdir()
    rcfile = write_rcfile(folder, ProjectRef(target=root, import_root=root, test_paths=[]), per_test=True)
    command = f'"{sys.executable}" -m coverage run --rcfile={rcfile} {pytest_args([name], folder / "junit.xml")}'
    subprocess.run(command, shell=True, cwd=root, env=hashed_env(), capture_output=True, check=False)
    return junit_outcomes(folder / "junit.xml", Path(name).stem), coverage_by_test(folder / ".coverage")


def hashed_env() -> dict[str, str]:
    """Seed 1, and the hash of a string under it, which only an interpreter started with that seed gives."""
    seeded = os.environ | {"PYTHONHASHSEED": "1"}
    check = subprocess.run(
        [sys.executable, "-c", "print(hash('covsweep'))"], env=seeded, capture_output=True, text=True
    )
    return seeded | {"EXPECTED_HASH": check.stdout.strip()}


def forked_run(root: Path, label: str, name: str, rcfile: str | None = None) -> tuple[Path, Path, list[str]]:
    """A run of tests/`name` into the folder forked-`label`; with `rcfile`, that name for its rcfile."""
    folder = root / f"forked-{label}"
    folder.mkdir()
    written = write_rcfile(folder, ProjectRef(target=root, import_root=root, test_paths=[]), per_test=True)
    return (
        folder / rcfile if rcfile else written,
        folder / "pytest.log",
        pytest_options([f"tests/{name}"], folder / "junit.xml"),
    )


def test_forked_runs_record_what_separate_coverage_runs_do_and_a_failing_run_stops_no_other(tmp_path):
    root = write_project(tmp_path / "project", FORKED)
    runs = [
        forked_run(root, "dies", "test_dies.py"),
        forked_run(root, "broken", "test_calc.py", rcfile="missing-rcfile"),
        forked_run(root, "calc", "test_calc.py"),
    ]
    workspace = tmp_path / "workspace"
    workspace.mkdir()

    command = forked_coverage_command(workspace, runs)
    subprocess.run(command, shell=True, cwd=root, env=hashed_env() | {"PY": sys.executable}, check=True)

    forked = root / "forked-calc"
    outcomes = junit_outcomes(forked / "junit.xml", "test_calc")
    assert outcomes == dict.fromkeys(["test_negative", "test_zero_and_hash", "test_run_as_coverage_runs_pytest"], True)
    assert "3 passed" in (forked / "pytest.log").read_text()
    assert (outcomes, coverage_by_test(forked / ".coverage")) == measured_alone(root, "tests/test_calc.py")
    assert not (root / "forked-dies" / "junit.xml").exists()
    assert "missing-rcfile" in (root / "forked-broken" / "pytest.log").read_text()  # its own error, in its log


REPORTED = {
    "pkg/__init__.py": "",
    "pkg/shapes.py": """\
        class Square:
            def __init__(self, side):
                self.side = side

            def area(self):
                return self.side * self.side


        def describe(x):
            if x > 10:
                return "big"
            elif x < 0:
                return "negative"
            return "small"


        def never_called():
            return [n for n in range(3) if n]
        """,
    "pkg/unused.py": "VALUE = 1\n",
    "tests/test_shapes.py": """\
        from pkg.shapes import Square, describe


        def test_area():
            assert Square(3).area() == 9


        def test_describe():
            assert describe(11) == "big"
        """,
}


def test_the_json_reporter_writes_what_coverage_json_does_and_fails_as_it_does(tmp_path):
    root = write_project(tmp_path / "project", REPORTED)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    rcfile = write_rcfile(workspace, ProjectRef(target=root, import_root=root, test_paths=[]), per_test=False)
    env = os.environ | {"PY": sys.executable}
    coverage_run = f'"$PY" -m coverage run --rcfile={rcfile} {pytest_args(["tests"], workspace / "junit.xml")}'
    subprocess.run(coverage_run, shell=True, cwd=root, env=env, capture_output=True, check=True)
    out = workspace / "out.json"

    def report(command: str) -> tuple[int, str, str]:
        """Exit status, output, and the report's text with its timestamp blanked."""
        done = subprocess.run(command, shell=True, cwd=root, env=env, capture_output=True, text=True)
        text = out.read_text() if out.exists() else ""
        out.unlink(missing_ok=True)
        return done.returncode, done.stdout + done.stderr, re.sub(r'"timestamp": "[^"]*"', '"timestamp": ""', text)

    def both() -> tuple[tuple[int, str, str], tuple[int, str, str]]:
        theirs = report(f'"$PY" -m coverage json --rcfile={rcfile} -q -o {out}')
        return report(coverage_json_command(workspace, rcfile, out)), theirs

    ours, theirs = both()
    assert ours == theirs
    files = json.loads(ours[2])["files"]
    assert sorted(files) == ["pkg/__init__.py", "pkg/shapes.py", "pkg/unused.py"]
    assert files["pkg/shapes.py"]["functions"]["describe"]["missing_lines"] == [12, 13, 14]

    rcfile.write_text(rcfile.read_text().replace("[json]", "[json]\npretty_print = True"))
    ours, theirs = both()
    assert ours == theirs and '\n    "files": {' in ours[2]

    (workspace / ".coverage").unlink()
    ours, theirs = both()
    assert ours == theirs and ours[0] == 1 and "No data to report" in ours[1]
    assert not (workspace / ".coverage").exists()
