"""A module's rounds, its fallback to Pynguin and its stops, with a scripted round and a fake
filter: no Docker, no Prefect server."""

from __future__ import annotations

import dataclasses

import pytest

from tasks.core import testfiles
from tasks.core.errors import ModuleError
from tasks.core.models import ModuleResult
from tasks.generators.module import MIN_ROUND_S, STOPS_THE_RUN, generate, process_module
from tasks.generators.quality import finishing_reserve
from tests.round_fakes import (
    STATEMENTS,
    Clock,
    FakeFilter,
    Reviews,
    ScriptedRound,
    candidate,
    local_results,
    make_job,
    steps,
)

EVERY_LINE = set(STATEMENTS)
ONE_LINE_EACH = {f"test_{n}": {n} for n in STATEMENTS}


@pytest.fixture(autouse=True)
def results_here(tmp_path):
    with local_results(tmp_path / "results"):
        yield


def test_rounds_stop_once_the_module_reaches_its_target(tmp_path):
    job = make_job(tmp_path)
    llm = ScriptedRound(job.workspace, [candidate("test_all")] * 3)

    result = process_module(job, steps(FakeFilter({"test_all": EVERY_LINE}), Clock(), llm=llm))

    assert [round_no for round_no, _ in llm.calls] == [1]
    assert (result.status, result.coverage.line, result.tests.accepted) == ("reached_target", 100.0, 1)
    assert testfiles.test_names(result.accepted_source) == ["test_all"]


def test_rounds_stop_at_max_iterations(tmp_path):
    job = make_job(tmp_path, max_iterations=3)
    llm = ScriptedRound(job.workspace, [candidate(f"test_{n}") for n in STATEMENTS])

    result = process_module(job, steps(FakeFilter(ONE_LINE_EACH), Clock(), llm=llm))

    assert [round_no for round_no, _ in llm.calls] == [1, 2, 3]
    assert (result.status, result.coverage.line, result.tests.accepted) == ("improved", 30.0, 3)
    assert testfiles.test_names(result.accepted_source) == ["test_1", "test_2", "test_3"]


def test_no_round_starts_with_less_than_min_round_s_left(tmp_path):
    clock, takes = Clock(), 10.0
    # Two rounds fit; after them MIN_ROUND_S - 1 seconds are left, besides what the delivered file needs.
    job = make_job(tmp_path, max_iterations=5)
    kept_back = finishing_reserve(job) / job.timeout  # a share of the timeout
    job.timeout = (2 * takes + MIN_ROUND_S - 1) / (1 - kept_back)
    llm = ScriptedRound(job.workspace, [candidate(f"test_{n}") for n in STATEMENTS], clock=clock, takes_s=takes)

    result = process_module(job, steps(FakeFilter(ONE_LINE_EACH), clock, llm=llm))

    remaining = [pytest.approx(r) for r in (2 * takes + MIN_ROUND_S - 1, takes + MIN_ROUND_S - 1)]
    assert [r for _, r in llm.calls] == remaining
    assert result.success and result.tests.accepted == 2


def test_a_budget_shorter_than_one_round_starts_none(tmp_path):
    job = make_job(tmp_path, timeout=MIN_ROUND_S - 1)
    llm = ScriptedRound(job.workspace, [candidate("test_all")])

    result = process_module(job, steps(FakeFilter({"test_all": EVERY_LINE}), Clock(), llm=llm))

    assert llm.calls == []
    assert (result.status, result.success, result.accepted_source) == ("unchanged", True, None)


def stopping_rounds(job, stop: str, kept_before: int) -> tuple[ScriptedRound, ScriptedRound]:
    llm = ScriptedRound(job.workspace, [candidate("test_1")] * kept_before + [ModuleError(stop, "stop")])
    return llm, ScriptedRound(job.workspace, [candidate("test_all")])


@pytest.mark.parametrize("stop", sorted(STOPS_THE_RUN))
@pytest.mark.parametrize("kept_before", [0, 1])
def test_a_run_wide_stop_is_raised_through(tmp_path, stop, kept_before):
    """Neither the tests earlier rounds kept nor Pynguin swallow a rejected key or a spent budget."""
    job = make_job(tmp_path)
    job.workspace.mkdir()
    llm, pynguin = stopping_rounds(job, stop, kept_before)
    fakes = steps(FakeFilter({"test_1": {1}, "test_all": EVERY_LINE}), Clock(), llm=llm, pynguin=pynguin)

    with pytest.raises(ModuleError) as raised:
        generate(job, ModuleResult(module=job.module.path, status="unchanged", success=True), 1e9, fakes)

    assert raised.value.info.type == stop
    assert len(llm.calls) == kept_before + 1 and pynguin.calls == []


@pytest.mark.parametrize("stop", sorted(STOPS_THE_RUN))
def test_a_run_wide_stop_is_the_modules_error(tmp_path, stop):
    job = make_job(tmp_path)
    llm, pynguin = stopping_rounds(job, stop, kept_before=1)
    fakes = steps(FakeFilter({"test_1": {1}, "test_all": EVERY_LINE}), Clock(), llm=llm, pynguin=pynguin)

    result = process_module(job, fakes)

    assert (result.status, result.success, result.error.type) == ("failed", False, stop)
    assert pynguin.calls == [] and result.accepted_source is None


def test_a_later_rounds_error_keeps_what_earlier_rounds_kept(tmp_path):
    job = make_job(tmp_path)
    llm = ScriptedRound(job.workspace, [candidate("test_1"), ModuleError("invalid_response", "prose, no code")])
    pynguin = ScriptedRound(job.workspace, [candidate("test_all")])

    result = process_module(
        job, steps(FakeFilter({"test_1": {1}, "test_all": EVERY_LINE}), Clock(), llm=llm, pynguin=pynguin)
    )

    assert (result.status, result.success, result.error, result.generator) == ("improved", True, None, "llm")
    assert testfiles.test_names(result.accepted_source) == ["test_1"]
    assert len(llm.calls) == 2 and pynguin.calls == []


def test_when_every_model_fails_pynguin_steps_in(tmp_path):
    job = make_job(tmp_path)
    llm = ScriptedRound(job.workspace, [ModuleError("rate_limit", "429 from every model")])
    pynguin = ScriptedRound(job.workspace, [candidate("test_all")])

    result = process_module(job, steps(FakeFilter({"test_all": EVERY_LINE}), Clock(), llm=llm, pynguin=pynguin))

    assert (result.status, result.success, result.generator) == ("reached_target", True, "pynguin")
    [issue] = result.validation.issues
    assert (issue.level, issue.rule) == ("WARNING", "llm-fallback") and "rate_limit" in issue.message
    assert testfiles.test_names(result.accepted_source) == ["test_all"]


def test_when_the_llm_and_pynguin_both_fail_the_module_needs_review(tmp_path):
    job = make_job(tmp_path)
    llm = ScriptedRound(job.workspace, [ModuleError("invalid_response", "prose, no code")])
    pynguin = ScriptedRound(job.workspace, [ModuleError("timeout", "Pynguin wrote nothing in time")])
    reviews = Reviews()

    result = process_module(job, steps(FakeFilter({}), Clock(), reviews, llm=llm, pynguin=pynguin))

    assert (result.status, result.success, result.error.type) == ("needs_review", False, "invalid_response")
    [(module, review)] = reviews.published
    assert (module, review.llm.type, review.pynguin.type) == ("pkg/mod.py", "invalid_response", "timeout")


def test_pynguin_failing_as_the_generator_is_a_failure_not_a_fallback(tmp_path):
    job = make_job(tmp_path, generator="pynguin")
    pynguin = ScriptedRound(job.workspace, [ModuleError("timeout", "Pynguin wrote nothing in time")])
    reviews = Reviews()

    result = process_module(job, steps(FakeFilter({}), Clock(), reviews, pynguin=pynguin))

    assert (result.status, result.error.type, len(pynguin.calls)) == ("failed", "timeout", 1)
    assert reviews.published == []


def test_a_module_that_cannot_be_imported_gets_no_round(tmp_path):
    job = make_job(tmp_path)
    llm = ScriptedRound(job.workspace, [candidate("test_all")])

    def unimportable(job, timeout):
        raise ModuleError("target", "ImportError: no module named nothing")

    fakes = dataclasses.replace(steps(FakeFilter({}), Clock(), llm=llm), probe=unimportable)
    result = process_module(job, fakes)

    assert (result.status, result.error.type, llm.calls) == ("failed", "target", [])
