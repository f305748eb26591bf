"""The conclusion of a run: generated tests that fail in the project's own suite are dropped one by
one, and every figure of the report is measured on the files left on disk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tasks.core.options import RunOptions
from tests.fake_llm import API_KEY, FakeLLM, Reply, completion_body
from tests.helpers import SHOP_INVENTORY_TESTS, independent_measurement, percent

# What a project's conftest may do: set up state that only its own suite has. A generated test that
# relies on its absence passes alone (as filtering runs it) and fails in the project's suite.
SUITE_CONFTEST = """\
import pytest


@pytest.fixture(autouse=True)
def _shop_suite(monkeypatch):
    monkeypatch.setenv("SHOP_SUITE", "1")
"""

ONLY_ALONE = '    assert "SHOP_SUITE" not in os.environ\n'

# inventory.py: two tests that pass anywhere, one that passes alone only.
INVENTORY_ANSWER = "import os\n" + SHOP_INVENTORY_TESTS.replace(
    "def test_add_rejects_nothing():\n", "def test_add_rejects_nothing():\n" + ONLY_ALONE
)

# discounts.py: every test passes alone only.
DISCOUNTS_ANSWER = f"""\
import os

import pytest

from shop.discounts import coupon_percent, percent_off


def test_coupons():
{ONLY_ALONE}    assert coupon_percent(" ") == 0
    assert coupon_percent("save20") == 20
    assert coupon_percent("SAVE90") == 0
    assert coupon_percent("WELCOME") == 15


def test_percent_off_rejects_more_than_all():
{ONLY_ALONE}    with pytest.raises(ValueError):
        percent_off(1, 101)
"""


def answering(files: dict[str, str]) -> Reply:
    """A reply with the test file for the module the prompt names."""

    def body(request: dict) -> bytes:
        prompt = json.dumps(request["body"].get("messages", []))
        dotted = next(d for d in files if f"The module under test is `{d}`" in prompt)
        return json.dumps(completion_body(f"```python\n{files[dotted]}```")).encode()

    return Reply(body=body, headers={"Content-Type": "application/json"})


# -- fast: the conclusion with a fake measurement ------------------------------------------------

GENERATED = """\
import pytest

from pkg.mod import f


@pytest.fixture
def value():
    return 2


def test_a(value):
    assert f(value) == 4


@pytest.mark.parametrize("x", [1, 2])
def test_b(x):
    assert f(x) > 0


class TestC:
    def test_d(self):
        assert f(0) == 0

    def test_e(self):
        assert f(1) == 2
"""
MODULE_LINES = list(range(1, 11))


@pytest.fixture
def plan(tmp_path):
    from tasks.core.models import Module, Project, SandboxConfig
    from tasks.core.options import RunOptions
    from tasks.core.plan import Plan

    module = Module(path="pkg/mod.py", dotted="pkg.mod", file=tmp_path / "src/pkg/mod.py", sha256="ab" * 32)
    module.file.parent.mkdir(parents=True)
    module.file.write_text("\n".join(f"X{n} = {n}" for n in MODULE_LINES) + "\n")  # where the import root is read
    project = Project(target=tmp_path, import_root=tmp_path / "src", test_paths=[tmp_path / "tests"], modules=[module])
    return Plan(
        run_id="run",
        project=project,
        generator="llm",
        sandbox=SandboxConfig(kind="local"),
        out=tmp_path / "tests" / "generated",
        report=tmp_path / ".covsweep" / "report.json",
        workspace=tmp_path / "workspace",
        options=RunOptions(target=str(tmp_path)),
    )


def written_file(plan) -> Path:
    """GENERATED as covsweep writes it: its marker and preamble first."""
    from tasks.delivery.write import WriteRequest, write_files

    [written] = write_files(plan.project, plan.out, [WriteRequest(module=plan.project.modules[0], source=GENERATED)])
    return written.path


def measurement(executed: list[int], failed: dict[Path, list[str]] | None = None):
    from tasks.core.models import FileCoverage, ProjectCoverage
    from tasks.coverage.measurement import Measurement

    coverage = FileCoverage(statements=MODULE_LINES, executed_lines=executed)
    return Measurement(
        coverage=ProjectCoverage(files={"pkg/mod.py": coverage}),
        failed_tests={str(path): names for path, names in (failed or {}).items()},
    )


class MeasureAgain:
    """Answers the n-th measurement after a change with the n-th of `answers`, and notes which
    tests were on disk when it was taken."""

    def __init__(self, path: Path, *answers):
        self.path, self.answers, self.saw = path, list(answers), []

    def __call__(self, attempt: int):
        from tasks.core.testfiles import test_names

        self.saw.append(test_names(self.path.read_text()) if self.path.exists() else None)
        return self.answers[attempt - 1]


def conclude(plan, path, final, measure_again, accepted: int = 5, mutation=None, issues=()):
    from datetime import UTC, datetime

    from tasks.core.models import ModuleResult, TestCounts, Validation
    from tasks.delivery.write import Written
    from tasks.reporting.conclusion import conclude_run

    result = ModuleResult(
        module="pkg/mod.py",
        status="improved",
        success=True,
        generator="llm",
        tests=TestCounts(proposed=accepted, accepted=accepted),
        accepted_source=GENERATED,
        mutation=mutation,
        validation=Validation(issues=list(issues)),
    )
    written = [Written(module="pkg/mod.py", path=path, changed=True)]
    baseline = measurement([1])
    return conclude_run(plan, baseline, final, [result], written, datetime.now(UTC), 1.0, measure_again)


def test_dropping_a_test_keeps_the_marker_the_preamble_and_the_other_tests(plan):
    from tasks.core.markers import MARKER
    from tasks.core.testfiles import test_names
    from tasks.reporting.conclusion import drop_tests

    path = written_file(plan)
    before = path.read_text()

    assert drop_tests(path, ["test_b", "TestC.test_d"])

    text = path.read_text()
    head = before[: before.index("@pytest.fixture")]
    assert text.startswith(MARKER) and text.startswith(head)
    assert test_names(text) == ["test_a", "TestC.test_e"]
    assert "def value():" in text and "parametrize" not in text
    compile(text, str(path), "exec")


def test_dropping_every_test_leaves_the_file_to_be_removed(plan):
    from tasks.reporting.conclusion import drop_tests

    path = written_file(plan)
    before = path.read_text()

    assert not drop_tests(path, ["test_a", "test_b", "TestC.test_d", "TestC.test_e"])
    assert path.read_text() == before


def test_without_a_failing_test_nothing_is_measured_again(plan):
    path = written_file(plan)
    again = MeasureAgain(path)

    report = conclude(plan, path, measurement([1, 2, 3, 4, 5, 6, 7, 8]), again)

    module = report.modules[0]
    assert again.saw == []
    assert (module.status, module.coverage.line, report.totals.line_after) == ("reached_target", 80.0, 80.0)
    assert module.generated_files == ["tests/generated/test_pkg_mod.py"] and module.validation.score == 1.0


def test_the_score_counts_the_warnings_the_module_task_left(plan):
    from tasks.core.models import Issue

    path = written_file(plan)
    stopped = Issue(level="WARNING", rule="stopped-early", message="round 2 failed (internal: boom); the rest kept")

    report = conclude(plan, path, measurement([1, 2, 3, 4, 5, 6, 7, 8]), MeasureAgain(path), issues=[stopped])

    assert report.modules[0].validation.issues == [stopped] and report.modules[0].validation.score == 0.9


def test_a_test_failing_in_the_suite_is_dropped_and_the_rest_measured_again(plan):
    path = written_file(plan)
    again = MeasureAgain(path, measurement([1, 2, 3, 4, 5, 6]))

    report = conclude(plan, path, measurement([1, 2, 3, 4, 5, 6, 7, 8], {path: ["test_b"]}), again)

    module = report.modules[0]
    assert again.saw == [["test_a", "TestC.test_d", "TestC.test_e"]]  # measured after the rewrite
    assert (module.status, module.success, module.coverage.line) == ("improved", True, 60.0)
    assert (report.totals.line_after, report.totals.tests_accepted) == (60.0, 4)
    assert (module.tests.accepted, module.tests.rejected_failing) == (4, 1)
    [issue] = module.validation.issues
    assert (issue.level, issue.rule, issue.message.split()[0]) == ("WARNING", "passes-in-suite", "test_b")
    assert module.generated_files == ["tests/generated/test_pkg_mod.py"]


def test_diff_coverage_comes_from_the_measurement_of_the_files_left_on_disk(plan):
    # The change touched lines 3, 4, 5 (statements) and 20 (not a statement: a comment, say).
    plan.changed = {"pkg/mod.py": [3, 4, 5, 20]}
    plan.options = RunOptions(target=plan.options.target, changed_since="main")
    path = written_file(plan)
    again = MeasureAgain(path, measurement([1, 2, 3, 6]))

    # Before: line 1 only. The first final measurement ran 3, 4 and 5, but a test failed and was dropped.
    report = conclude(plan, path, measurement([1, 2, 3, 4, 5, 6], {path: ["test_b"]}), again)

    # By hand: 3 changed statements; none ran before; after the drop, line 3 alone.
    expected = {"lines": 3, "covered_before": 0, "covered_after": 1, "percent_before": 0.0, "percent_after": 33.33}
    assert report.modules[0].diff.model_dump() == expected
    assert report.totals.diff.model_dump() == expected | {"ref": "main"}


def test_without_changed_since_there_is_no_diff(plan):
    path = written_file(plan)
    report = conclude(plan, path, measurement([1, 2]), MeasureAgain(path))
    assert report.totals.diff is None and report.modules[0].diff is None


def test_a_mutation_score_of_tests_dropped_afterwards_is_withdrawn(plan):
    from tasks.core.models import MutationScore

    score = MutationScore(mutants=10, killed=6, survived=4, score=60.0)
    path = written_file(plan)
    kept = conclude(plan, path, measurement([1, 2, 3]), MeasureAgain(path), mutation=score)
    assert (kept.modules[0].mutation, kept.totals.mutation_score) == (score, 60.0)

    path = written_file(plan)
    again = MeasureAgain(path, measurement([1, 2]))
    dropped = conclude(plan, path, measurement([1, 2, 3], {path: ["test_b"]}), again, mutation=score)
    module = dropped.modules[0]
    assert (module.mutation, dropped.totals.mutation_score) == (None, None)
    assert ("INFO", "mutation-withdrawn") in [(i.level, i.rule) for i in module.validation.issues]


def test_a_file_whose_every_test_fails_is_removed_and_measured_without(plan):
    path = written_file(plan)
    again = MeasureAgain(path, measurement([1]))
    every = ["test_a", "test_b", "TestC.test_d", "TestC.test_e"]

    report = conclude(plan, path, measurement([1, 2, 3, 4, 5, 6, 7, 8], {path: every}), again, accepted=4)

    module = report.modules[0]
    assert again.saw == [None] and not path.exists()
    assert (module.status, module.success, module.generated_files) == ("needs_review", False, [])
    assert (module.coverage.line, report.totals.line_after, report.totals.tests_accepted) == (10.0, 10.0, 0)
    assert (module.tests.accepted, module.tests.rejected_failing) == (0, 4)
    assert [i.rule for i in module.validation.issues] == ["passes-in-suite"] * 4 + ["file-removed"]
    assert {i.level for i in module.validation.issues} == {"ERROR"}


def test_a_file_that_keeps_failing_after_its_rewrites_is_removed(plan):
    """Test order: each rewrite makes another test fail; after MAX_REWRITES the file goes."""
    from tasks.reporting.conclusion import MAX_REWRITES

    path = written_file(plan)
    order = ["test_a", "test_b", "TestC.test_d", "TestC.test_e"]
    answers = [measurement([1, 2, 3], {path: [name]}) for name in order[1 : MAX_REWRITES + 1]] + [measurement([1])]
    again = MeasureAgain(path, *answers)

    report = conclude(plan, path, measurement([1, 2, 3, 4], {path: order[:1]}), again, accepted=4)

    module = report.modules[0]
    assert len(again.saw) == MAX_REWRITES + 1 and again.saw[-1] is None and not path.exists()
    assert [len(tests) for tests in again.saw[:-1]] == list(range(3, 3 - MAX_REWRITES, -1))
    assert (module.status, module.coverage.line, module.tests.accepted) == ("needs_review", 10.0, 0)
    removed = [i for i in module.validation.issues if i.rule == "file-removed"]
    assert len(removed) == 1 and f"after {MAX_REWRITES} rewrites" in removed[0].message


# -- generated tests that make the project's own tests fail: bisection (fast, a fake test runner) -----

GENERATED_FILE = "tests/generated/test_pkg_mod.py"
OWN = "tests/test_own.py::test_state"


def generated_ids(*names: str) -> list[str]:
    return [f"{GENERATED_FILE}::{name.replace('.', '::')}" for name in names]


class SharedState:
    """Runs tests as a suite with shared state would: a watched project test fails when one of `culprits`
    ran before it; `always` fail whatever ran. Notes each run's tests."""

    def __init__(self, *culprits: str, always: tuple[str, ...] = ()):
        self.culprits, self.always, self.runs = set(generated_ids(*culprits)), set(always), []

    def __call__(self, node_ids: list[str], watched: list[str]) -> list[str]:
        self.runs.append(node_ids)
        return [t for t in watched if t in self.always or self.culprits & set(node_ids[: node_ids.index(t)])]


def broken_suite(executed: list[int], broken: list[str], order: list[str] | None = None):
    """A final measurement in which the project's `broken` tests failed, after every generated test."""
    every = generated_ids("test_a", "test_b", "TestC.test_d", "TestC.test_e")
    return measurement(executed).model_copy(update={"failed_project": broken, "order": order or every + broken})


def conclude_with(plan, path, final, again, run_with, baseline_failed: list[str] = ()):
    from datetime import UTC, datetime

    from tasks.core.models import ModuleResult, TestCounts
    from tasks.delivery.write import Written
    from tasks.reporting.conclusion import conclude_run

    result = ModuleResult(
        module="pkg/mod.py",
        status="improved",
        success=True,
        generator="llm",
        tests=TestCounts(proposed=5, accepted=5),
        accepted_source=GENERATED,
    )
    written = [Written(module="pkg/mod.py", path=path, changed=True)]
    baseline = measurement([1]).model_copy(update={"failed_project": list(baseline_failed)})
    return conclude_run(plan, baseline, final, [result], written, datetime.now(UTC), 1.0, again, run_with)


def own_test(plan) -> Path:
    own = plan.project.target / "tests" / "test_own.py"
    own.write_text("import pkg.mod\n\n\ndef test_state():\n    assert not hasattr(pkg.mod, 'patched')\n")
    return own


def test_the_generated_test_that_breaks_a_project_test_is_found_by_bisection_and_dropped(plan):
    from tasks.core.testfiles import test_names

    path, own = written_file(plan), own_test(plan)
    before = own.read_text()
    runner = SharedState("TestC.test_d")
    again = MeasureAgain(path, measurement([1, 2, 3, 4, 5, 6]))

    report = conclude_with(plan, path, broken_suite([1, 2, 3, 4, 5, 6, 7], [OWN]), again, runner)

    module = report.modules[0]
    assert test_names(path.read_text()) == ["test_a", "test_b", "TestC.test_e"] and own.read_text() == before
    assert again.saw == [["test_a", "test_b", "TestC.test_e"]]  # measured again after the drop
    [issue] = [i for i in module.validation.issues if i.rule == "breaks-project-tests"]
    assert issue.level == "WARNING" and issue.message.startswith("TestC.test_d made") and OWN in issue.message
    assert (module.status, module.success, module.tests.accepted, module.tests.rejected_failing) == (
        "improved",
        True,
        4,
        1,
    )
    assert all(run[-1] == OWN for run in runner.runs)  # the project's test where the suite ran it: last
    assert [] in [run[:-1] for run in runner.runs] and len(runner.runs) <= 2 + 2 * 2


def test_every_culprit_is_dropped_and_only_they(plan):
    from tasks.core.testfiles import test_names

    path = written_file(plan)
    runner = SharedState("test_a", "TestC.test_e")

    report = conclude_with(plan, path, broken_suite([1, 2], [OWN]), MeasureAgain(path, measurement([1])), runner)

    assert test_names(path.read_text()) == ["test_b", "TestC.test_d"]
    [issue] = [i for i in report.modules[0].validation.issues if i.rule == "breaks-project-tests"]
    assert issue.message.startswith("test_a, TestC.test_e made")


def test_a_project_test_that_fails_without_any_generated_test_drops_none(plan):
    path = written_file(plan)
    text = path.read_text()
    runner, again = SharedState(always=(OWN,)), MeasureAgain(path)

    report = conclude_with(plan, path, broken_suite([1, 2], [OWN]), again, runner)

    assert path.read_text() == text and again.saw == [] and len(runner.runs) == 1
    assert "breaks-project-tests" not in [i.rule for i in report.modules[0].validation.issues]


def test_a_project_test_that_failed_before_the_generated_tests_is_not_theirs_to_answer_for(plan):
    path = written_file(plan)
    runner = SharedState("test_a")

    conclude_with(plan, path, broken_suite([1, 2], [OWN]), MeasureAgain(path), runner, baseline_failed=[OWN])

    assert runner.runs == []


def test_a_file_whose_every_test_breaks_the_project_tests_is_removed(plan):
    path = written_file(plan)
    runner = SharedState("test_a", "test_b", "TestC.test_d", "TestC.test_e")

    report = conclude_with(plan, path, broken_suite([1, 2], [OWN]), MeasureAgain(path, measurement([1])), runner)

    module = report.modules[0]
    assert not path.exists() and (module.status, module.success) == ("needs_review", False)
    assert ("ERROR", "breaks-project-tests") in [(i.level, i.rule) for i in module.validation.issues]


@pytest.fixture(scope="module")
def suite_run(prefect_api, sandbox_image, tmp_path_factory):
    from flows.spec_to_production import spec_to_production
    from tests.conftest import EXAMPLE

    target = tmp_path_factory.mktemp("suite") / "shop"
    shutil.copytree(EXAMPLE, target)
    (target / "tests" / "conftest.py").write_text(SUITE_CONFTEST)
    fake = FakeLLM()
    reply = answering({"shop.inventory": INVENTORY_ANSWER, "shop.discounts": DISCOUNTS_ANSWER})
    fake.script(*[reply] * 6)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)
            report = spec_to_production(
                target=str(target),
                modules=["shop/inventory.py", "shop/discounts.py"],
                generator="llm",
                models="m/one",
                llm_base_url=fake.base_url,
                timeout=150,
                mutation="off",  # the figures on disk are the point here, not more rounds
            )
    finally:
        fake.close()
    return target, report, independent_measurement(target, tmp_path_factory.mktemp("independent"))


@pytest.mark.docker
def test_every_figure_is_measured_on_the_files_left_on_disk(suite_run):
    target, report, measured = suite_run
    from tasks.core.testfiles import test_names

    files = {name.removeprefix("src/"): entry["summary"] for name, entry in measured["files"].items()}
    # The totals are over the modules the run processed (--modules), every one of them measured.
    summaries = [files[m.module] for m in report.modules]
    lines = [sum(s[k] for s in summaries) for k in ("covered_lines", "num_statements")]
    branches = [sum(s[k] for s in summaries) for k in ("covered_branches", "num_branches")]
    assert (report.totals.line_after, report.totals.branch_after) == (percent(*lines), percent(*branches))
    on_disk = sum(len(test_names(p.read_text())) for p in (target / "tests" / "generated").glob("test_*.py"))
    assert report.totals.tests_accepted == on_disk == 2
    for module in report.modules:
        summary = files[module.module]
        assert module.coverage.line == percent(summary["covered_lines"], summary["num_statements"]), module
        assert module.coverage.branch == percent(summary["covered_branches"], summary["num_branches"]), module


@pytest.mark.docker
def test_a_file_whose_every_test_fails_in_the_suite_is_removed(suite_run):
    target, report, _ = suite_run
    discounts = next(m for m in report.modules if m.module == "shop/discounts.py")
    assert (discounts.status, discounts.success, discounts.generated_files) == ("needs_review", False, [])
    assert not (target / "tests" / "generated" / "test_shop_discounts.py").exists()
    assert (discounts.tests.accepted, discounts.tests.rejected_failing) == (0, 2)
    dropped = [i for i in discounts.validation.issues if i.rule == "passes-in-suite"]
    assert sorted(i.message.split()[0] for i in dropped) == ["test_coupons", "test_percent_off_rejects_more_than_all"]
    assert all(i.level == "ERROR" for i in dropped)


@pytest.mark.docker
def test_only_the_tests_that_fail_in_the_suite_are_dropped(suite_run):
    from tasks.core.markers import MARKER
    from tasks.core.testfiles import test_names

    target, report, _ = suite_run
    inventory = next(m for m in report.modules if m.module == "shop/inventory.py")
    assert inventory.success and inventory.status == "reached_target", inventory
    assert inventory.generated_files == ["tests/generated/test_shop_inventory.py"]
    text = (target / inventory.generated_files[0]).read_text()
    assert text.startswith(MARKER)
    assert test_names(text) == ["test_stock_and_reservations", "test_release"]
    assert (inventory.tests.accepted, inventory.tests.rejected_failing) == (2, 1)
    dropped = [i for i in inventory.validation.issues if i.rule == "passes-in-suite"]
    assert [(i.level, i.message.split()[0]) for i in dropped] == [("WARNING", "test_add_rejects_nothing")]
    assert 90.0 < inventory.coverage.line < 100.0  # the dropped test's line is not covered any more


# -- the same with real Docker: a generated test that leaks state into the project's own test -----------

LEAKY_MODULE = """\
RATES = {"eur": 1.0}


def rate(name):
    return RATES[name]


def double(x):
    return 2 * x
"""

OWN_TESTS = """\
from pkg.mod import RATES


def test_the_shipped_rates():
    assert RATES == {"eur": 1.0}
"""

LEAKY_GENERATED = """\
from pkg import mod


def test_double():
    assert mod.double(2) == 4


def test_a_new_rate():
    mod.RATES["usd"] = 1.1
    assert mod.rate("usd") == 1.1


def test_rate():
    assert mod.rate("eur") == 1.0
"""


@pytest.mark.docker
def test_a_generated_test_leaking_state_into_a_project_test_is_dropped_in_a_real_suite(docker_config, tmp_path):
    from datetime import UTC, datetime

    from tasks.conclude import conclude
    from tasks.core.models import ModuleResult, TestCounts
    from tasks.core.plan import Plan
    from tasks.core.testfiles import test_names
    from tasks.coverage.measurement import measure
    from tasks.delivery.write import WriteRequest, write_files
    from tasks.project.discover import discover
    from tests.helpers import write_project

    target = write_project(
        tmp_path / "leaky",
        {"src/pkg/__init__.py": "", "src/pkg/mod.py": LEAKY_MODULE, "tests/test_own.py": OWN_TESTS},
    )
    project = discover(target)
    own_before = (target / "tests" / "test_own.py").read_text()
    plan = Plan(
        run_id="leaky",
        project=project,
        generator="llm",
        sandbox=docker_config,
        out=target / "tests" / "generated",
        report=None,
        workspace=tmp_path / "work",
        options=RunOptions(target=str(target), timeout=120),
    )
    baseline = measure(docker_config, project, plan.test_paths(), plan.workspace / "baseline", 300)
    [module] = project.modules
    written = write_files(project, plan.out, [WriteRequest(module=module, source=LEAKY_GENERATED)])
    final = measure(docker_config, project, plan.test_paths(), plan.workspace / "final", 300)
    assert final.failed_project == ["tests/test_own.py::test_the_shipped_rates"] and not final.failed_tests
    result = ModuleResult(
        module=module.path,
        status="reached_target",
        success=True,
        generator="llm",
        tests=TestCounts(proposed=3, accepted=3),
        accepted_source=LEAKY_GENERATED,
    )

    report = conclude.fn(plan, baseline, final, [result], written, datetime.now(UTC), 1.0)

    [path] = [w.path for w in written]
    assert test_names(path.read_text()) == ["test_double", "test_rate"]
    assert (target / "tests" / "test_own.py").read_text() == own_before
    done = report.modules[0]
    [issue] = [i for i in done.validation.issues if i.rule == "breaks-project-tests"]
    assert issue.message.startswith("test_a_new_rate made") and "test_the_shipped_rates" in issue.message
    assert (done.success, done.tests.accepted, done.coverage.line) == (True, 2, 100.0)
    again = measure(docker_config, project, plan.test_paths(), plan.workspace / "again", 300)
    assert again.failed_project == [] and not again.failed_tests
