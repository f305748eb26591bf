"""Mutation-guided rounds, tests kept for the mutants they kill, the readable rewrite and the final score:
the module task's logic with a scripted round, a fake filter and fake mutation runs (no Docker)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest

from flows.spec_to_production import spec_to_production
from tasks.core import testfiles
from tasks.core.errors import ModuleError
from tasks.generators.module import process_module
from tasks.generators.quality import MIN_STEP_S, MUTATION_SHARE, Checks
from tasks.project.discover import discover
from tests.fake_llm import API_KEY, code_answer
from tests.helpers import CALLS_ONLY, CHECKS, SURVIVOR_LINE, write_project
from tests.round_fakes import (
    NO_CHECKS,
    STATEMENTS,
    Clock,
    FakeFilter,
    FakeMutation,
    ScriptedRound,
    candidate,
    local_results,
    make_job,
    steps,
    unchanged,
)

EVERY_LINE = set(STATEMENTS)
# test_calls covers every line and kills nothing; the checking tests cover nothing new.
COVERS = {"test_calls": EVERY_LINE}
KILLS = {"test_prices": {"m1", "m2", "m3", "m4", "m5"}, "test_stock": {"m6", "m7", "m8"}, "test_again": {"m1"}}


@pytest.fixture(autouse=True)
def results_here(request, tmp_path):
    """The module task's ledger in the test's folder; a flow run keeps its own with the Prefect API."""
    if "prefect_api" in request.fixturenames:
        yield
        return
    with local_results(tmp_path / "results"):
        yield


def test_assertion_free_tests_score_low_and_tests_that_kill_the_survivors_are_kept(tmp_path):
    job = make_job(tmp_path, mutation=True)
    llm = ScriptedRound(job.workspace, [candidate("test_calls"), candidate("test_prices", "test_again", "test_stock")])
    mutation = FakeMutation(KILLS)

    result = process_module(job, steps(FakeFilter(COVERS), Clock(), checks=mutation.checks(), llm=llm))

    # Round 1 reached the coverage target with a score of 0: round 2 hears of every mutant, round 1 of none.
    first, second = llm.feedbacks
    assert first is None
    assert [m.name for m in second.survivors] == [m.name for m in mutation.mutants()]
    # test_again kills only m1, which test_prices before it kills: it adds nothing and is dropped.
    assert testfiles.test_names(result.accepted_source) == ["test_calls", "test_prices", "test_stock"]
    counts = result.tests
    assert (counts.proposed, counts.accepted, counts.rejected_no_gain) == (4, 3, 1)
    assert mutation.groups == [[["test_prices"], ["test_again"], ["test_stock"]]]
    assert result.mutation.model_dump() == {"mutants": 10, "killed": 8, "survived": 2, "timeout": 0, "score": 80.0}
    # The score is of the delivered file; 80 >= --mutation-target: no third round.
    assert mutation.runs[-1][0] == result.accepted_source
    assert len(llm.calls) == 2 and result.status == "reached_target"


def test_rounds_go_on_below_the_mutation_target_until_they_run_out(tmp_path):
    job = make_job(tmp_path, mutation=True, mutation_target=90.0, max_iterations=2)
    llm = ScriptedRound(job.workspace, [candidate("test_calls"), candidate("test_prices")])
    mutation = FakeMutation(KILLS)

    result = process_module(job, steps(FakeFilter(COVERS), Clock(), checks=mutation.checks(), llm=llm))

    assert len(llm.calls) == 2 and result.mutation.score == 50.0
    # One run between the rounds, one of the delivered file; none after the last round's filter.
    assert len(mutation.runs) == 2


def test_a_test_is_not_kept_for_mutants_its_own_rounds_kept_tests_kill(tmp_path):
    job = make_job(tmp_path, mutation=True, max_iterations=2)
    half = {n for n in STATEMENTS if n <= 5}
    llm = ScriptedRound(job.workspace, [candidate("test_calls"), candidate("test_rest", "test_again")])
    mutation = FakeMutation(KILLS | {"test_rest": {"m1"}})

    result = process_module(
        job,
        steps(FakeFilter({"test_calls": half, "test_rest": EVERY_LINE}), Clock(), checks=mutation.checks(), llm=llm),
    )

    # test_rest adds coverage and kills m1: test_again, which kills only m1, adds nothing.
    assert mutation.groups == [[["test_rest"], ["test_again"]]]
    assert testfiles.test_names(result.accepted_source) == ["test_calls", "test_rest"]
    assert result.tests.rejected_no_gain == 1


def test_with_mutation_off_nothing_is_mutated_and_coverage_alone_decides(tmp_path):
    job = make_job(tmp_path, mutation=False)
    llm = ScriptedRound(job.workspace, [candidate("test_calls"), candidate("test_prices")])

    result = process_module(job, steps(FakeFilter(COVERS), Clock(), checks=NO_CHECKS, llm=llm))

    assert len(llm.calls) == 1 and result.mutation is None
    assert (result.success, result.status) == (True, "reached_target")
    assert not [i for i in result.validation.issues if i.rule.startswith("mutation")]


def test_the_score_is_of_the_rewritten_file_that_is_delivered(tmp_path):
    job = make_job(tmp_path, mutation=True, max_iterations=1)
    llm = ScriptedRound(job.workspace, [candidate("test_calls", "test_prices")])
    mutation = FakeMutation(KILLS | {"test_calls_named": {"m9", "m10"}})
    readable = []

    def rename(job, source, timeout):
        readable.append(timeout)
        return source.replace("def test_calls", "def test_calls_named")

    fakes = steps(FakeFilter(COVERS | {"test_prices": EVERY_LINE}), Clock(), checks=mutation.checks(rename), llm=llm)
    result = process_module(job, fakes)

    assert "def test_calls_named" in result.accepted_source
    assert mutation.runs[-1][0] == result.accepted_source
    assert result.mutation.killed == 2  # of the rewritten file: test_prices was dropped as adding nothing
    assert readable == [pytest.approx(120.0)]


def test_a_failed_mutation_run_is_a_warning_and_the_module_keeps_its_tests(tmp_path):
    job = make_job(tmp_path, mutation=True)
    llm = ScriptedRound(job.workspace, [candidate("test_calls")])
    calls = []

    def broken(job, tests, timeout):
        calls.append(timeout)
        raise ModuleError("sandbox", "mutmut gave no verdict")

    result = process_module(
        job, steps(FakeFilter(COVERS), Clock(), checks=Checks(mutate=broken, readable=unchanged), llm=llm)
    )

    assert (result.success, result.status, result.mutation) == (True, "reached_target", None)
    [issue] = [i for i in result.validation.issues if i.rule == "mutation-failed"]
    assert issue.level == "WARNING" and "mutmut gave no verdict" in issue.message
    assert len(calls) == 1  # not tried again for the delivered file
    assert testfiles.test_names(result.accepted_source) == ["test_calls"]


def test_a_run_between_rounds_that_ran_out_of_time_is_tried_again_for_the_delivered_file(tmp_path):
    job = make_job(tmp_path, mutation=True)
    llm = ScriptedRound(job.workspace, [candidate("test_calls"), candidate("test_prices")])
    mutation = FakeMutation(KILLS)
    timeouts = []

    def slow_once(job, tests, timeout):
        timeouts.append(timeout)
        if len(timeouts) == 1:
            raise ModuleError("timeout", "no mutant was tried within 90s")
        return mutation.mutate(job, tests, timeout)

    checks = Checks(mutate=slow_once, kills=mutation.kill_groups, readable=unchanged)
    result = process_module(job, steps(FakeFilter(COVERS), Clock(), checks=checks, llm=llm))

    # No score after round 1: coverage alone decided, and the delivered file got its score.
    assert len(llm.calls) == 1 and len(timeouts) == 2
    assert result.mutation.score == 0.0
    assert not [i for i in result.validation.issues if i.rule == "mutation-failed"]


def test_a_score_that_runs_out_of_time_for_the_delivered_file_too_is_an_info_not_a_failure(tmp_path):
    job = make_job(tmp_path, mutation=True)
    llm = ScriptedRound(job.workspace, [candidate("test_calls"), candidate("test_prices")])
    timeouts = []

    def always_slow(job, tests, timeout):
        timeouts.append(timeout)
        raise ModuleError("timeout", f"no mutant was tried within {timeout:.0f}s")

    checks = Checks(mutate=always_slow, readable=unchanged)
    result = process_module(job, steps(FakeFilter(COVERS), Clock(), checks=checks, llm=llm))

    assert len(timeouts) == 2 and result.mutation is None
    assert [(i.level, i.rule) for i in result.validation.issues] == [("INFO", "mutation-skipped")]
    assert "no mutant was tried within" in result.validation.issues[0].message
    assert (result.success, result.status, result.validation.score) == (True, "reached_target", 1.0)


def test_mutants_left_untried_are_an_info_and_not_counted(tmp_path):
    job = make_job(tmp_path, mutation=True, mutation_target=0.0)
    llm = ScriptedRound(job.workspace, [candidate("test_calls", "test_prices")])
    mutation = FakeMutation(KILLS, unfinished=3)

    result = process_module(
        job, steps(FakeFilter(COVERS | {"test_prices": EVERY_LINE}), Clock(), checks=mutation.checks(), llm=llm)
    )

    assert result.mutation.mutants == 7
    [issue] = [i for i in result.validation.issues if i.rule == "mutation-unfinished"]
    assert issue.level == "INFO" and "3 of 10" in issue.message


def test_with_no_time_left_the_rewrite_and_the_score_are_skipped_not_overrun(tmp_path):
    clock = Clock()
    job = make_job(tmp_path, mutation=True, timeout=100.0)
    # The round leaves MIN_STEP_S - 1 seconds.
    llm = ScriptedRound(job.workspace, [candidate("test_calls")], clock=clock, takes_s=100.0 - MIN_STEP_S + 1)

    result = process_module(job, steps(FakeFilter(COVERS), clock, checks=NO_CHECKS, llm=llm))

    rules = {(i.level, i.rule) for i in result.validation.issues}
    assert {("INFO", "readable-skipped"), ("INFO", "mutation-skipped")} <= rules
    assert result.success and result.mutation is None and result.accepted_source


def test_mutation_runs_get_at_most_their_share_of_the_time_left(tmp_path):
    clock = Clock()
    job = make_job(tmp_path, mutation=True, timeout=300.0, max_iterations=2)
    llm = ScriptedRound(job.workspace, [candidate("test_calls"), candidate("test_stock")], clock=clock, takes_s=100.0)
    mutation = FakeMutation(KILLS, clock=clock, takes_s=20.0)

    process_module(job, steps(FakeFilter(COVERS), clock, checks=mutation.checks(), llm=llm))

    # After round 1 (100 s in): its share, 90 s. After round 2 (220 s in), for the delivered file: the 80 s left.
    assert [timeout for _, timeout in mutation.runs] == [MUTATION_SHARE * 300.0, 80.0]


# -- end to end: the flow, the real sandbox and mutmut, the scripted LLM ---------------------------


@contextmanager
def mutation_containers(below: Path) -> Iterator[list[str]]:
    """The commands of covsweep's mutation runs (driver.py in the sandbox) that mount something below
    `below`, seen by polling Docker while the block runs: each lives for seconds, polls are 0.2 s apart."""
    from tasks.sandbox.containers import LABEL

    seen: dict[str, str] = {}
    done = threading.Event()

    def poll() -> None:
        client = docker.from_env()
        while not done.wait(0.2):
            for c in client.api.containers(filters={"label": f"{LABEL}=sandbox"}):
                mounts = [Path(m.get(end) or "/") for m in c.get("Mounts", []) for end in ("Source", "Destination")]
                if "/mutation/driver.py" in c["Command"] and any(p.is_relative_to(below) for p in mounts):
                    seen[c["Id"]] = c["Command"]

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    commands: list[str] = []
    try:
        yield commands
    finally:
        done.set()
        watcher.join()
        commands += seen.values()


def _discounts_run(example: Path, fake_llm, **options):
    return spec_to_production(
        target=str(example),
        modules=["shop/discounts.py"],
        generator="llm",
        models="m/one",
        llm_base_url=fake_llm.base_url,
        timeout=600,  # a bound, not the time it takes: a loaded host slows every sandbox run
        max_iterations=2,
        **options,
    )


@pytest.fixture
def llm_key(monkeypatch):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)


def test_survivors_of_assertion_free_tests_steer_the_next_round_and_its_killers_are_kept(
    prefect_api, sandbox_image, example, fake_llm, llm_key, tmp_path
):
    fake_llm.script(code_answer(CALLS_ONLY), code_answer(CHECKS))
    with mutation_containers(example.parent) as containers:
        report = _discounts_run(example, fake_llm)

    module = report.modules[0]
    assert len(fake_llm.requests) == 2, module
    first, second = (r.body["messages"][-1]["content"] for r in fake_llm.requests)
    assert "Surviving mutants" not in first
    section = second.split("## Surviving mutants\n", 1)[1]
    listed = [SURVIVOR_LINE.match(line) for line in section.splitlines() if line.startswith("- ")]
    source = (example / "src/shop/discounts.py").read_text().splitlines()
    assert listed and all(listed)
    for match in listed:
        assert match[1] == "shop/discounts.py" and source[int(match[2]) - 1].strip() == match[3] != match[4]
    # Round 1 covered every line: what round 2 kept, it kept for the mutants it kills.
    mutation = module.mutation
    score_after_round_one = round(100 * (mutation.mutants - len(listed)) / mutation.mutants, 2)
    assert module.coverage.line == 100.0 and score_after_round_one < 70.0
    assert mutation.score > score_after_round_one
    generated = (example / module.generated_files[0]).read_text()
    kept_for_mutants = [n for n in testfiles.test_names(CHECKS) if f"def {n}(" in generated]
    assert kept_for_mutants
    assert module.tests.accepted == 1 + len(kept_for_mutants)
    assert module.tests.rejected_no_gain == len(testfiles.test_names(CHECKS)) - len(kept_for_mutants)
    assert report.totals.mutation_score == mutation.score
    assert len(containers) >= 2  # between the rounds, and for the delivered file


def test_with_mutation_off_there_is_no_mutation_figure_and_no_mutation_run(
    prefect_api, sandbox_image, example, fake_llm, llm_key
):
    fake_llm.script(code_answer(CALLS_ONLY))
    with mutation_containers(example.parent) as containers:
        report = _discounts_run(example, fake_llm, mutation="off")

    module = report.modules[0]
    assert module.tests.accepted == 1 and module.coverage.line == 100.0
    assert (module.mutation, report.totals.mutation_score) == (None, None)
    assert len(fake_llm.requests) == 1  # coverage alone decides: its target was reached
    assert containers == []


def test_a_hanging_mutant_is_a_timeout_in_the_modules_score(docker_config, tmp_path):
    from tasks.coverage.measurement import measure
    from tasks.generators.module import SANDBOX

    target = write_project(
        tmp_path / "counting",
        {"counting.py": "def count_up(limit):\n    i = 0\n    while i < limit:\n        i += 1\n    return i\n"},
    )
    project = discover(target)
    module = project.modules[0]
    baseline = measure(docker_config, project, [], tmp_path / "baseline", 120).coverage.files[module.path]
    job = make_job(
        tmp_path, project=project.ref(), module=module, baseline=baseline, sandbox=docker_config, mutation=True
    )
    tests = "from counting import count_up\n\n\ndef test_counts_up_to_the_limit():\n    assert count_up(3) == 3\n"
    llm = ScriptedRound(job.workspace, [tests])
    started = time.monotonic()

    result = process_module(job, dataclasses.replace(SANDBOX, rounds={"llm": lambda job, result: llm}))

    assert result.success and result.coverage.line == 100.0, result
    assert result.mutation.timeout >= 1  # `i += 1` -> `i -= 1` never reaches the limit
    assert result.mutation.score == round(
        100 * (result.mutation.killed + result.mutation.timeout) / result.mutation.mutants, 2
    )
    assert time.monotonic() - started < job.timeout
