"""The ledger of finished modules, in Prefect's local result storage: what it records, and a module
it has seen finish being skipped with its tests given back. No Docker, no Prefect server."""

from __future__ import annotations

import pytest

from tasks.core.errors import ModuleError
from tasks.core.markers import MARKER
from tasks.core.models import Module, ModuleResult
from tasks.coverage import ledger
from tasks.coverage.ledger import DONE, finished_result, module_fingerprint, record_finished
from tasks.generators.module import process_module
from tests.git_fixtures import planned
from tests.round_fakes import STATEMENTS, Clock, FakeFilter, ScriptedRound, candidate, local_results, make_job, steps

NOT_DONE = ["failed", "needs_review"]


@pytest.fixture(autouse=True)
def results_here(tmp_path):
    with local_results(tmp_path / "results"):
        yield


@pytest.mark.parametrize("status", sorted(DONE))
def test_a_done_module_is_recorded_with_its_tests(status):
    record_finished("f" * 64, ModuleResult(module="pkg/mod.py", status=status, success=True, accepted_source="T"))

    finished = finished_result("f" * 64)

    assert (finished.module, finished.status, finished.accepted_source) == ("pkg/mod.py", status, "T")


@pytest.mark.parametrize("status", NOT_DONE)
def test_a_module_that_did_not_finish_is_not_recorded(status):
    record_finished("f" * 64, ModuleResult(module="pkg/mod.py", status=status, success=False, accepted_source="T"))

    assert finished_result("f" * 64) is None


def test_the_statuses_are_done_or_not_done():
    from typing import get_args

    from tasks.core.models import Status

    assert sorted(DONE | set(NOT_DONE)) == sorted(get_args(Status))


def test_a_finished_module_is_skipped_with_an_unchanged_issue_and_its_tests_come_back(tmp_path):
    job = make_job(tmp_path)
    first = process_module(
        job,
        steps(
            FakeFilter({"test_all": set(STATEMENTS)}),
            Clock(),
            llm=ScriptedRound(job.workspace, [candidate("test_all")]),
        ),
    )
    assert first.status == "reached_target" and first.accepted_source

    again = ScriptedRound(job.workspace, [candidate("test_all")])
    second = process_module(job, steps(FakeFilter({"test_all": set(STATEMENTS)}), Clock(), llm=again))

    assert again.calls == []
    assert (second.status, second.success, second.accepted_source) == ("skipped", True, first.accepted_source)
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
