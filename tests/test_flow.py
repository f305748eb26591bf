"""The flow `spec-to-production` end to end: real Prefect API, real Docker sandbox, real Pynguin."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.spec_to_production import spec_to_production
from tasks.core.markers import MARKER
from tasks.core.settings import load
from tasks.coverage.readable.leftovers import leftovers
from tasks.coverage.validation import assertion_free
from tests.helpers import independent_measurement, percent, snapshot, write_project

pytestmark = pytest.mark.docker


# A module's budget that a loaded 2-core host meets, for tests about what a run writes or how a module
# fails, not about how fast: Pynguin alone may take a minute to start there, and a module waits for a
# sandbox slot within its budget.
ROOMY_TIMEOUT_S = 300
# A later round's failure as the report words it: which round, the error's type and message.
STOPPED_EARLY = r"round [2-9] failed \(\w+: .+\); the tests earlier rounds accepted are kept"


def _without_outputs(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if not k.startswith(("tests/generated/", ".covsweep/"))}


@pytest.fixture(scope="module")
def plain_pytest(tmp_path_factory) -> Path:
    """A venv with pytest and nothing of covsweep: where a user's CI runs the generated tests."""
    venv = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheelhouse = load().cache_dir / "wheelhouse"
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(wheelhouse), "pytest<9"],
        check=True,
    )
    return venv / "bin" / "pytest"


@pytest.fixture(scope="module")
def example_run(prefect_api, sandbox_image, tmp_path_factory):
    import shutil

    from tests.conftest import EXAMPLE

    target = tmp_path_factory.mktemp("run") / "shop"
    shutil.copytree(EXAMPLE, target)
    before = snapshot(target)
    state = spec_to_production(target=str(target), timeout=120, return_state=True)
    return target, before, state


def test_coverage_rises_and_the_report_says_so(example_run):
    target, _, state = example_run
    report = state.result()
    assert state.is_completed()
    assert report.totals.line_after > report.totals.line_before
    assert report.totals.branch_after > report.totals.branch_before
    assert report.totals.failed == 0
    for module in report.modules:
        assert module.success, module
        assert module.coverage.line >= module.coverage_before.line
        assert module.status in {"reached_target", "improved", "unchanged"}
    improved = [m for m in report.modules if m.tests.accepted]
    assert improved, "no module got a test"
    for module in improved:
        assert module.generated_files
        text = (target / module.generated_files[0]).read_text()
        assert text.startswith(MARKER)
        # Pynguin may keep a test that only calls, and the rewrite may leave something a reader trips on:
        # validation names them, and nothing else is wrong. On a loaded host a later round (mutation
        # refinement) may fail or run out of time: the report says which round and why, and keeps the rest.
        warnings = [i for i in module.validation.issues if i.level != "INFO"]
        stops = [i for i in warnings if i.rule == "stopped-early"]
        assert all(re.fullmatch(STOPPED_EARLY, i.message) for i in stops), warnings
        unchecked = assertion_free(ast.parse(text))
        expected = [("WARNING", "no-assertion")] * bool(unchecked) + [("WARNING", "readable")] * len(leftovers(text))
        assert [(i.level, i.rule) for i in warnings] == [("WARNING", "stopped-early")] * len(stops) + expected, warnings
        assert module.validation.score == round(1.0 - 0.1 * len(warnings), 2)


def test_generated_files_read_as_a_person_would_write_them(example_run):
    target, _, state = example_run
    files = [target / m.generated_files[0] for m in state.result().modules if m.generated_files]
    assert files
    for path in files:
        text = path.read_text()
        assert not re.findall(r"def (test_\d+|test_case_\d+)\(", text), path.name
        assert not re.findall(r"\b(var_\d+|module_\d+)\b", text), path.name
        assert "sys.modules[" not in text and "sys.path" not in text, path.name


def test_the_rewritten_tests_keep_the_coverage_the_report_gives(example_run, tmp_path):
    """Plain pytest under coverage on the host, covsweep nowhere: each module's figure as the report has it."""
    target, _, state = example_run
    measured = independent_measurement(target, tmp_path)
    files = {name.removeprefix("src/"): entry["summary"] for name, entry in measured["files"].items()}
    for module in state.result().modules:
        summary = files[module.module]
        assert module.coverage.line == percent(summary["covered_lines"], summary["num_statements"]), module
        assert module.coverage.branch == percent(summary["covered_branches"], summary["num_branches"]), module


def test_every_module_with_tests_has_a_mutation_score_and_the_total_pools_them(example_run):
    report = example_run[2].result()
    scored = [m.mutation for m in report.modules if m.mutation is not None]
    assert scored
    # A module whose time ran out says so rather than giving a score of something else.
    unscored = [m for m in report.modules if m.tests.accepted and m.mutation is None]
    assert all({"mutation-skipped", "mutation-failed"} & {i.rule for i in m.validation.issues} for m in unscored)
    for score in scored:
        assert score.killed + score.survived + score.timeout == score.mutants
    detected = sum(s.killed + s.timeout for s in scored)
    assert report.totals.mutation_score == percent(detected, sum(s.mutants for s in scored))


def test_the_json_report_on_disk_matches_the_persisted_result(example_run):
    import json

    target, _, state = example_run
    on_disk = json.loads((target / ".covsweep" / "report.json").read_text())
    assert on_disk["schema"] == "covsweep.report/1"
    assert on_disk["run_id"] == str(state.state_details.flow_run_id)
    assert on_disk["totals"] == state.result().totals.model_dump()
    assert set(on_disk["modules"][0]) >= {
        "module",
        "status",
        "success",
        "generated_files",
        "coverage_before",
        "coverage",
        "tests",
        "execution_time",
        "timings",
        "generator",
        "model_used",
        "metadata",
        "validation",
        "error",
    }
    assert set(on_disk["modules"][0]["timings"]) == {"generate", "validate", "sandbox_start"}


def test_nothing_of_the_project_changes_but_the_generated_tests(example_run):
    target, before, _ = example_run
    assert _without_outputs(snapshot(target)) == _without_outputs(before)


def test_generated_tests_pass_under_plain_pytest_without_covsweep(example_run, plain_pytest):
    target, _, _ = example_run
    probe = subprocess.run(
        [str(plain_pytest.parent / "python"), "-c", "import covsweep"], cwd=target, capture_output=True
    )
    assert probe.returncode != 0, "the plain venv must not have covsweep"
    result = subprocess.run(
        [str(plain_pytest), "-q", "-p", "no:cacheprovider", "tests/generated"],
        cwd=target,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_artifacts_are_published(example_run):
    import asyncio

    async def keys():
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["covsweep-summary", "covsweep-modules", "covsweep-progress"])
                )
            )
            return {a.key for a in found}

    assert asyncio.run(keys()) == {"covsweep-summary", "covsweep-modules", "covsweep-progress"}


def test_a_second_run_adds_to_its_own_files(example_run, plain_pytest):
    from tasks.core.testfiles import test_names

    target, _, _ = example_run
    generated = target / "tests" / "generated"
    earlier = {p.name: set(test_names(p.read_text())) for p in generated.glob("test_*.py")}
    assert earlier, "the first run wrote no test file"
    report = spec_to_production(target=str(target), timeout=60, max_iterations=1, coverage_target=100)
    assert report.totals.line_before >= 90.0, "the earlier generated tests count in the baseline"
    for name, tests in earlier.items():
        assert tests <= set(test_names((generated / name).read_text())), name
    result = subprocess.run(
        [str(plain_pytest), "-q", "-p", "no:cacheprovider", "tests"], cwd=target, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_users_file_of_the_same_name_is_never_touched(prefect_api, example):
    users = example / "tests" / "generated" / "test_shop_money.py"
    users.parent.mkdir(parents=True)
    users.write_text("def test_mine():\n    assert True\n")
    report = spec_to_production(
        target=str(example), timeout=ROOMY_TIMEOUT_S, max_iterations=1, modules=["shop/money.py"]
    )
    assert users.read_text() == "def test_mine():\n    assert True\n"
    assert report.modules[0].generated_files == ["tests/generated/test_shop_money_covsweep.py"]


HOSTILE = {
    "hostile/__init__.py": "",
    "hostile/exits.py": "import sys\nsys.exit(3)\n",
    "hostile/loops.py": "while True:\n    pass\n",
    # each child holds its process slot: the loop meets the pid limit, not the timeout
    "hostile/forks.py": "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(3600)\n",
    "hostile/hog.py": "HOG = b'x' * (4 * 1024 ** 3)\n",
    "hostile/calls_out.py": "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)\n",
    "hostile/broken.py": "def f(:\n",
    "hostile/good.py": "def sign(x):\n    if x < 0:\n        return -1\n    return 1 if x else 0\n",
}


def test_hostile_modules_fail_alone_and_touch_nothing(prefect_api, sandbox_image, tmp_path):
    marker = Path(f"/tmp/covsweep-hostile-{uuid.uuid4().hex}")
    files = dict(HOSTILE)
    files["hostile/writes.py"] = f"open({str(marker)!r}, 'w').write('x')\n\ndef one():\n    return 1\n"
    target = write_project(tmp_path / "proj", files)
    before = snapshot(target)

    report = spec_to_production(target=str(target), timeout=ROOMY_TIMEOUT_S, max_iterations=1, reruns=2)

    modules = {m.module: m for m in report.modules}
    expected = {
        "hostile/exits.py": "target",
        "hostile/loops.py": "timeout",
        "hostile/forks.py": "target",
        "hostile/hog.py": "sandbox",
        "hostile/calls_out.py": "target",
        "hostile/broken.py": "target",
    }
    assert {name: (modules[name].status, modules[name].error.type) for name in expected} == {
        name: ("failed", kind) for name, kind in expected.items()
    }
    assert modules["hostile/good.py"].success and modules["hostile/good.py"].coverage.line == 100.0
    assert modules["hostile/writes.py"].success
    assert "sys.exit(3)" in modules["hostile/exits.py"].error.message
    assert "BlockingIOError" in modules["hostile/forks.py"].error.message
    assert "memory limit" in modules["hostile/hog.py"].error.message
    assert not marker.exists(), "a module wrote to the host's /tmp"
    assert _without_outputs(snapshot(target)) == _without_outputs(before)


def test_an_unchanged_module_is_not_generated_again(prefect_api, example):
    params = dict(
        target=str(example), timeout=ROOMY_TIMEOUT_S, max_iterations=1, modules=["shop/cart.py"], mutation="off"
    )
    first = spec_to_production(**params)
    assert first.modules[0].status != "skipped" and first.modules[0].tests.proposed > 0
    generated = sorted((example / "tests" / "generated").glob("*.py"))
    assert generated
    contents = [p.read_bytes() for p in generated]

    again = spec_to_production(**params)
    assert again.modules[0].status == "skipped" and again.modules[0].tests.proposed == 0
    assert [p.read_bytes() for p in generated] == contents

    # A run killed before it wrote anything: the next one writes what the finished module kept.
    for path in generated:
        path.unlink()
    resumed = spec_to_production(**params)
    assert resumed.modules[0].status == "skipped"
    assert [p.read_bytes() for p in generated] == contents

    cart = example / "src" / "shop" / "cart.py"
    cart.write_text(cart.read_text() + "\n\ndef empty(cart):\n    return cart.count() == 0\n")
    changed = spec_to_production(**params)
    assert changed.modules[0].status != "skipped"


# -- --framework: a project whose CI runs `python -m unittest` -------------------------------------

RANGE_OPS = """
def clamp(value, low, high):
    if low > high:
        raise ValueError("low > high")
    if value < low:
        return low
    if value > high:
        return high
    return value


def sign(x):
    if x < 0:
        return -1
    if x == 0:
        return 0
    return 1
"""
UNITTEST_OWN = """
import unittest

from calc.ops import clamp


class TestClamp(unittest.TestCase):
    def test_inside(self):
        self.assertEqual(clamp(5, 0, 10), 5)
"""


@pytest.fixture(scope="module")
def unittest_run(prefect_api, sandbox_image, tmp_path_factory):
    root = tmp_path_factory.mktemp("unittest")
    root.chmod(0o755)
    target = write_project(
        root / "proj", {"calc/__init__.py": "", "calc/ops.py": RANGE_OPS, "tests/test_ops.py": UNITTEST_OWN}
    )
    report = spec_to_production(target=str(target), generator="pynguin", max_iterations=2, timeout=150)
    return target, report


def unittest_discover(target: Path, tmp_path: Path, *coverage: str) -> subprocess.CompletedProcess:
    """`python -m unittest discover -s tests` as the project's CI runs it, in a venv with nothing installed,
    or under coverage.py when `coverage` gives its options."""
    if coverage:
        command = [sys.executable, "-m", "coverage", "run", *coverage, "-m", "unittest", "discover", "-s", "tests"]
    else:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
        command = [str(tmp_path / "bare" / "bin" / "python"), "-m", "unittest", "discover", "-s", "tests"]
    return subprocess.run(command, cwd=target, capture_output=True, text=True, timeout=300)


def test_a_unittest_project_gets_testcase_tests_that_unittest_runs_and_counts(unittest_run, tmp_path):
    target, report = unittest_run
    [module] = report.modules
    assert module.tests.accepted > 0, module
    generated = target / module.generated_files[0]
    tree = ast.parse(generated.read_text())
    assert not [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert classes and all(ast.unparse(c.bases[0]) == "unittest.TestCase" for c in classes)
    assert (generated.parent / "__init__.py").read_text().startswith(MARKER)  # discovery goes into packages only

    ran = unittest_discover(target, tmp_path)

    assert ran.returncode == 0, ran.stderr
    # The project's own test and every accepted one, found by unittest's own discovery.
    assert f"Ran {1 + module.tests.accepted} test" in ran.stderr


def test_its_figures_are_those_of_unittest_under_coverage(unittest_run, tmp_path):
    target, report = unittest_run
    ran = unittest_discover(target, tmp_path, "--branch", f"--data-file={tmp_path / '.coverage'}", "--include=calc/*")
    assert ran.returncode == 0, ran.stderr
    subprocess.run(
        [
            sys.executable,
            "-m",
            "coverage",
            "json",
            f"--data-file={tmp_path / '.coverage'}",
            "-o",
            str(tmp_path / "c.json"),
        ],
        cwd=target,
        check=True,
        capture_output=True,
    )
    summary = json.loads((tmp_path / "c.json").read_text())["files"]["calc/ops.py"]["summary"]
    [module] = report.modules
    assert module.coverage.line == round(100 * summary["covered_lines"] / summary["num_statements"], 2)
    assert module.coverage.branch == round(100 * summary["covered_branches"] / summary["num_branches"], 2)
