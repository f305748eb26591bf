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
def test_a_run_wide_stop_before_any_test_is_kept_is_raised_through(tmp_path, stop):
    """Pynguin does not swallow a rejected key or a spent budget."""
    job = make_job(tmp_path)
    job.workspace.mkdir()
    llm, pynguin = stopping_rounds(job, stop, kept_before=0)
    fakes = steps(FakeFilter({"test_1": {1}, "test_all": EVERY_LINE}), Clock(), llm=llm, pynguin=pynguin)

    with pytest.raises(ModuleError) as raised:
        generate(job, ModuleResult(module=job.module.path, status="unchanged", success=True), 1e9, fakes)

    assert raised.value.info.type == stop
    assert len(llm.calls) == 1 and pynguin.calls == []


@pytest.mark.parametrize("stop", sorted(STOPS_THE_RUN))
def test_a_run_wide_stop_with_nothing_kept_is_the_modules_error(tmp_path, stop):
    job = make_job(tmp_path)
    llm, pynguin = stopping_rounds(job, stop, kept_before=0)
    fakes = steps(FakeFilter({"test_1": {1}, "test_all": EVERY_LINE}), Clock(), llm=llm, pynguin=pynguin)

    result = process_module(job, fakes)

    assert (result.status, result.success, result.error.type) == ("failed", False, stop)
    assert pynguin.calls == [] and result.accepted_source is None


def every_breaker_open(message: str) -> ModuleError:
    return ModuleError("connection", message, run_wide=True)


@pytest.mark.parametrize(
    "stop",
    [ModuleError(kind, f"{kind} stop") for kind in sorted(STOPS_THE_RUN)]
    + [every_breaker_open("no model gave a usable answer: m/one: circuit breaker open after connection")],
    ids=lambda e: e.info.type,
)
def test_a_run_wide_stop_mid_module_keeps_what_earlier_rounds_accepted(tmp_path, stop):
    """The tests of rounds before the stop are the module's tests; its error and an issue say why it stopped."""
    job = make_job(tmp_path)
    llm = ScriptedRound(job.workspace, [candidate("test_1"), stop])
    pynguin = ScriptedRound(job.workspace, [candidate("test_all")])
    fakes = steps(FakeFilter({"test_1": {1}, "test_all": EVERY_LINE}), Clock(), llm=llm, pynguin=pynguin)

    result = process_module(job, fakes)

    assert testfiles.test_names(result.accepted_source) == ["test_1"]
    assert (result.status, result.tests.accepted, result.coverage.line) == ("improved", 1, 10.0)
    assert (result.success, result.error) == (False, stop.info)
    [stopped] = [i for i in result.validation.issues if i.rule == "stopped-early"]
    assert stopped.level == "WARNING" and "round 2 failed" in stopped.message and stop.info.message in stopped.message
    assert len(llm.calls) == 2 and pynguin.calls == []


def test_a_later_rounds_error_keeps_what_earlier_rounds_kept(tmp_path):
    job = make_job(tmp_path)
    llm = ScriptedRound(job.workspace, [candidate("test_1"), ModuleError("invalid_response", "prose, no code")])
    pynguin = ScriptedRound(job.workspace, [candidate("test_all")])

    result = process_module(
        job, steps(FakeFilter({"test_1": {1}, "test_all": EVERY_LINE}), Clock(), llm=llm, pynguin=pynguin)
    )

    assert (result.status, result.success, result.error, result.generator) == ("improved", True, None, "llm")
    assert testfiles.test_names(result.accepted_source) == ["test_1"]
    assert [i.rule for i in result.validation.issues] == ["stopped-early"]
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


# -- the real LLM client against a scripted server on 127.0.0.1 (the filter is still the fake) -------------

SCRIPTED_ROUND_ONE = "from pkg.mod import X\n\n\ndef test_1():\n    assert X == 1\n"
COSTLY = 100_000  # tokens each way: $0.3 at m/one's $1 + $2 per million, more than the budget below


def scripted_stops():
    from tests.fake_llm import code_answer, server_error, unauthorized

    return {
        "authentication": ({}, [code_answer(SCRIPTED_ROUND_ONE), unauthorized()]),
        "budget": (
            {"budget_usd": 0.1},
            [code_answer(SCRIPTED_ROUND_ONE, prompt_tokens=COSTLY, completion_tokens=COSTLY), code_answer()],
        ),
        # one model: three 500s in a row (a try and two retries) open its breaker, the only one of the chain
        "breaker": ({}, [code_answer(SCRIPTED_ROUND_ONE)] + [server_error()] * 3),
    }


@pytest.mark.parametrize("stop", sorted(scripted_stops()))
def test_a_scripted_service_stopping_the_run_after_round_one_keeps_round_ones_test(
    tmp_path, fake_llm, llm_config, monkeypatch, stop
):
    from tasks.generators.rounds import ROUNDS
    from tasks.llm.config import spec_of
    from tasks.llm.session import llm_session
    from tests.fake_llm import API_KEY

    update, replies = scripted_stops()[stop]
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)
    spec = spec_of(llm_config.model_copy(update={"models": ["m/one"], **update}), f"run-{stop}")
    job = make_job(tmp_path, llm=spec)
    job.module.file.parent.mkdir(parents=True)
    (job.module.file.parent / "__init__.py").write_text("")
    job.module.file.write_text("X = 1\n")
    fake_llm.script(*replies)
    fakes = dataclasses.replace(
        steps(FakeFilter({"test_1": {1}}), Clock()), rounds={"llm": ROUNDS["llm"], "pynguin": ROUNDS["pynguin"]}
    )

    with llm_session(spec):
        result = process_module(job, fakes)

    assert testfiles.test_names(result.accepted_source) == ["test_1"], result
    assert (result.status, result.tests.accepted, result.success) == ("improved", 1, False)
    assert result.error.type == {"breaker": "connection"}.get(stop, stop)
    assert [i.rule for i in result.validation.issues if i.level == "WARNING"] == ["stopped-early"]
    assert result.generator == "llm" and fake_llm.pending() == (1 if stop == "budget" else 0)
