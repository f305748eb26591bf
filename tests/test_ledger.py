"""The ledger of finished modules, in Prefect's local result storage: what it records, and a module
it has seen finish being skipped with its tests given back. No Docker, no Prefect server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.core import testfiles
from tasks.core.errors import ModuleError
from tasks.core.markers import MARKER
from tasks.core.models import DONE, ErrorInfo, FileCoverage, Module, ModuleResult, Project, ProjectCoverage
from tasks.core.options import RunOptions
from tasks.core.plan import Plan
from tasks.coverage import ledger
from tasks.coverage.ledger import finished_entry, module_fingerprint, record_generated
from tasks.coverage.measurement import Measurement
from tasks.generators.module import process_module
from tasks.reporting.conclusion import conclude_run
from tasks.write import write_tests
from tests.git_fixtures import planned
from tests.round_fakes import STATEMENTS, Clock, FakeFilter, ScriptedRound, candidate, local_results, make_job, steps

NOT_DONE = ["failed", "needs_review"]


@pytest.fixture(autouse=True)
def results_here(tmp_path):
    with local_results(tmp_path / "results"):
        yield


def pending(status: str, **fields) -> ModuleResult:
    return ModuleResult(
        module="pkg/mod.py", status=status, success=True, accepted_source="T", fingerprint="f" * 64, **fields
    )


@pytest.mark.parametrize("status", sorted(DONE))
def test_a_done_module_is_recorded_with_its_tests_to_be_validated(status):
    record_generated(pending(status))

    entry = finished_entry("f" * 64)

    assert (entry.result.module, entry.result.status, entry.accepted_source) == ("pkg/mod.py", status, "T")
    assert not entry.concluded


@pytest.mark.parametrize("status", NOT_DONE)
def test_a_module_that_did_not_finish_is_not_recorded(status):
    record_generated(pending(status).model_copy(update={"success": False}))

    assert finished_entry("f" * 64) is None


def test_a_module_a_run_wide_stop_ended_mid_way_is_not_done():
    stopped = pending("improved").model_copy(update={"success": False, "error": ErrorInfo(type="budget", message="$")})
    record_generated(stopped)

    assert finished_entry("f" * 64) is None


def test_the_statuses_are_done_or_not_done():
    from typing import get_args

    from tasks.core.models import Status

    assert sorted(DONE | set(NOT_DONE)) == sorted(get_args(Status))


def test_a_finished_module_is_skipped_with_an_unchanged_issue_and_its_tests_come_back(tmp_path):
    job = make_job(tmp_path)
    first = run_once(job, ["test_all"])
    assert first.status == "reached_target" and first.generated_files

    again = ScriptedRound(job.workspace, [candidate("test_all")])
    second = process_module(job, steps(FakeFilter({"test_all": set(STATEMENTS)}), Clock(), llm=again))

    assert again.calls == []
    assert (second.status, second.success) == ("skipped", True)
    assert testfiles.test_names(second.accepted_source) == ["test_all"]
    assert [(i.level, i.rule) for i in second.validation.issues] == [("INFO", "unchanged")]


def test_a_module_that_needs_review_is_generated_again(tmp_path):
    job = make_job(tmp_path)
    failing = [ModuleError("invalid_response", "prose")]
    first = process_module(
        job,
        steps(
            FakeFilter({}),
            Clock(),
            llm=ScriptedRound(job.workspace, failing),
            pynguin=ScriptedRound(job.workspace, [ModuleError("timeout", "nothing in time")]),
        ),
    )
    assert first.status == "needs_review"

    again = ScriptedRound(job.workspace, [candidate("test_all")])
    second = process_module(job, steps(FakeFilter({"test_all": set(STATEMENTS)}), Clock(), llm=again))

    assert len(again.calls) == 1 and second.status == "reached_target"


def test_the_fingerprint_follows_the_source_the_projects_tests_and_the_settings(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_own.py").write_text("def test_own():\n    assert True\n")
    module = Module(path="m.py", dotted="m", file=tmp_path / "m.py", sha256="a" * 64)
    base = module_fingerprint(module, ledger.tests_fingerprint([tests]), {"reruns": 3})

    (tests / "test_generated.py").write_text(f"{MARKER} for m.py\ndef test_new():\n    assert True\n")
    assert module_fingerprint(module, ledger.tests_fingerprint([tests]), {"reruns": 3}) == base  # covsweep's own: not

    changed = [
        module_fingerprint(
            module.model_copy(update={"sha256": "b" * 64}), ledger.tests_fingerprint([tests]), {"reruns": 3}
        ),
        module_fingerprint(module, ledger.tests_fingerprint([tests]), {"reruns": 2}),
    ]
    (tests / "test_own.py").write_text("def test_own():\n    assert 1\n")
    changed.append(module_fingerprint(module, ledger.tests_fingerprint([tests]), {"reruns": 3}))
    assert base not in changed and len(set(changed)) == 3


def test_a_clone_is_the_same_project_in_every_run_and_another_repository_is_not(origin, git_daemon, run_cache):
    """A repository is cloned into each run's own workspace: its modules are named by their place in the
    clone and by the repository, so a run that resumes at the same commit finds what the last one finished."""

    def fingerprints(plan) -> list[str]:
        tests = ledger.tests_fingerprint(plan.project.test_paths, plan.repo)
        return [module_fingerprint(m, tests, plan.fingerprint_settings(), plan.repo) for m in plan.project.modules]

    first, second = planned(origin.url, ref="v1"), planned(origin.url, ref="v1")
    assert first.workspace != second.workspace
    assert fingerprints(first) == fingerprints(second)
    assert fingerprints(planned(git_daemon, ref="v1")) != fingerprints(first)  # the same files, another repository


# -- the ledger after a run's conclusion: what it left on disk ----------------------------------------


def plan_of(job) -> Plan:
    job.module.file.parent.mkdir(parents=True, exist_ok=True)
    job.module.file.write_text("\n".join(f"X{n} = {n}" for n in STATEMENTS) + "\n")
    return Plan(
        run_id="run",
        project=Project.model_validate(job.project.model_dump() | {"modules": [job.module]}),
        generator="llm",
        sandbox=job.sandbox,
        out=job.project.target / "tests" / "generated",
        report=None,
        workspace=job.workspace.parent / "run",
        options=RunOptions(target=str(job.project.target)),
    )


def measured(failed: dict[Path, list[str]] | None = None) -> Measurement:
    coverage = FileCoverage(statements=STATEMENTS, executed_lines=STATEMENTS)
    return Measurement(
        coverage=ProjectCoverage(files={"pkg/mod.py": coverage}),
        failed_tests={str(path): names for path, names in (failed or {}).items()},
    )


def run_once(job, names: list[str], failing_in_suite: list[str] = ()) -> ModuleResult:
    """One run of the module: generation (each test covers lines of its own), the write, the conclusion, in
    which `failing_in_suite` fail in the project's suite."""
    plan = plan_of(job)
    generated = process_module(
        job,
        steps(
            FakeFilter({n: {s for s in STATEMENTS if s % len(names) == i} for i, n in enumerate(names)}),
            Clock(),
            llm=ScriptedRound(job.workspace, [candidate(*names)] * job.max_iterations),
        ),
    )
    written = write_tests.fn(plan, [generated])
    failed = {w.path: list(failing_in_suite) for w in written} if failing_in_suite else None
    report = conclude_run(
        plan, measured(), measured(failed), [generated], written, datetime.now(UTC), 1.0, lambda n: measured()
    )
    return report.modules[0]


def test_a_module_whose_every_test_the_conclusion_dropped_is_generated_again(tmp_path):
    job = make_job(tmp_path, max_iterations=1)
    first = run_once(job, ["test_a"], failing_in_suite=["test_a"])
    assert first.status == "needs_review"

    again = ScriptedRound(job.workspace, [candidate("test_b")])
    second = process_module(job, steps(FakeFilter({"test_b": set(STATEMENTS)}), Clock(), llm=again))

    assert len(again.calls) == 1 and second.status == "reached_target"


def test_the_ledger_holds_the_tests_the_conclusion_left_on_disk(tmp_path):
    job = make_job(tmp_path, max_iterations=1)
    first = run_once(job, ["test_a", "test_b"], failing_in_suite=["test_b"])
    assert first.success and first.tests.accepted == 1

    entry = finished_entry(job.fingerprint)
    assert entry.concluded and testfiles.test_names(entry.accepted_source) == ["test_a"]
    again = ScriptedRound(job.workspace, [candidate("test_c")])
    second = process_module(job, steps(FakeFilter({}), Clock(), llm=again))
    assert again.calls == [] and testfiles.test_names(second.accepted_source) == ["test_a"]


def test_a_killed_run_leaves_its_tests_to_the_next_run_to_validate(tmp_path):
    job = make_job(tmp_path, max_iterations=1)
    plan_of(job)
    process_module(
        job, steps(FakeFilter({"test_a": {1}}), Clock(), llm=ScriptedRound(job.workspace, [candidate("test_a")]))
    )

    again = ScriptedRound(job.workspace, [candidate("test_c")])
    resumed = process_module(job, steps(FakeFilter({}), Clock(), llm=again))

    assert again.calls == [] and testfiles.test_names(resumed.accepted_source) == ["test_a"]
    assert [(i.level, i.rule) for i in resumed.validation.issues] == [("INFO", "resumed")]


@pytest.mark.parametrize("change", ["generated file edited", "module edited"])
def test_a_module_whose_source_or_generated_file_changed_since_is_generated_again(tmp_path, change):
    job = make_job(tmp_path, max_iterations=1)
    first = run_once(job, ["test_a"])
    edited = job.module.file if change == "module edited" else tmp_path / first.generated_files[0]
    edited.write_text(edited.read_text() + "\n# edited by hand\n")

    again = ScriptedRound(job.workspace, [candidate("test_b")])
    process_module(job, steps(FakeFilter({"test_b": set(STATEMENTS)}), Clock(), llm=again))

    assert len(again.calls) == 1


def test_a_generated_file_gone_since_is_written_again_not_generated(tmp_path):
    job = make_job(tmp_path, max_iterations=1)
    first = run_once(job, ["test_a"])
    (tmp_path / first.generated_files[0]).unlink()

    again = ScriptedRound(job.workspace, [candidate("test_b")])
    second = process_module(job, steps(FakeFilter({}), Clock(), llm=again))

    assert again.calls == [] and testfiles.test_names(second.accepted_source) == ["test_a"]
