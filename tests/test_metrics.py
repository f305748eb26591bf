"""Figures and model scores from stored reports."""

from __future__ import annotations

from tasks.core.models import Attempt, Coverage, Metadata, ModuleResult, MutationScore, Report, Totals
from tasks.llm.metrics import model_figures, rank, score_model, system_figures


def module(
    model: str | None,
    attempts: list[tuple[str, str, float]],
    before: float,
    after: float,
    tokens: int = 100,
    success: bool = True,
) -> ModuleResult:
    return ModuleResult(
        module="pkg/m.py",
        status="improved" if success else "failed",
        success=success,
        generator="llm",
        model_used=model,
        coverage_before=Coverage(line=before),
        coverage=Coverage(line=after),
        execution_time=10.0,
        metadata=Metadata(
            tokens_used=tokens, cost=0.01, attempts=[Attempt(model=m, outcome=o, duration_s=d) for m, o, d in attempts]
        ),
    )


def report(run_id: str, modules: list[ModuleResult]) -> Report:
    return Report(
        run_id=run_id,
        target="/p",
        generator="llm",
        coverage_target=80,
        started_at="",
        finished_at="",
        duration_s=1.0,
        totals=Totals(
            modules=len(modules),
            line_before=10,
            line_after=40,
            tokens_used=sum(m.metadata.tokens_used for m in modules),
        ),
        modules=modules,
    )


REPORTS = [
    report(
        "r1",
        [
            module("fast/coder", [("slow/general", "timeout", 60.0), ("fast/coder", "ok", 4.0)], 10, 70),
            module("fast/coder", [("fast/coder", "ok", 6.0)], 0, 50),
        ],
    ),
    report(
        "r2",
        [
            module("slow/general", [("slow/general", "ok", 40.0)], 20, 25),
            module(None, [("slow/general", "rate_limit", 1.0), ("fast/coder", "server", 2.0)], 0, 0, success=False),
        ],
    ),
]


def test_model_figures_come_from_attempts_and_the_modules_a_model_wrote():
    figures = model_figures(REPORTS)
    coder, general = figures["fast/coder"], figures["slow/general"]
    assert (coder.attempts, coder.modules, coder.runs) == (3, 2, 2)
    assert coder.success_rate == round(2 / 3, 3)
    assert coder.coverage_gained == 110.0 and coder.tokens == 200
    assert general.success_rate == round(1 / 3, 3) and general.latency_p50_s == 40.0


def test_system_figures_cover_every_module():
    system = system_figures(REPORTS)
    assert (system.runs, system.modules) == (2, 4)
    assert system.success_rate == 0.75
    assert system.coverage_gained == 60.0


def test_the_better_model_ranks_first_whatever_the_configured_order():
    ranked = rank(["slow/general", "fast/coder"], REPORTS)
    assert [s.model for s in ranked] == ["fast/coder", "slow/general"]
    assert ranked[0].score > ranked[1].score
    assert any("requests answered" in reason for reason in ranked[0].reasons)


def test_a_model_without_history_is_neutral_and_says_so():
    score = score_model("new/model", None)
    assert score.parts["quality"] == score.parts["success"] == score.parts["latency"] == 0.5
    assert "no stored runs" in score.reasons[0]
    assert [s.model for s in rank(["b/y", "a/x"], [])] == ["b/y", "a/x"]  # a tie keeps the configured order


def _scored(model: str, killed: int, timeout: int, mutants: int) -> ModuleResult:
    scored = module(model, [(model, "ok", 5.0)], 0, 50)
    score = round(100 * (killed + timeout) / mutants, 2)
    scored.mutation = MutationScore(
        mutants=mutants, killed=killed, timeout=timeout, survived=mutants - killed - timeout, score=score
    )
    return scored


def test_mutation_score_per_model_pools_the_mutants_of_the_modules_it_wrote():
    reports = [
        report("r1", [_scored("a/coder", 9, 1, 20), _scored("b/general", 3, 0, 30)]),
        report("r2", [_scored("a/coder", 14, 0, 20), module("a/coder", [("a/coder", "ok", 3.0)], 0, 10)]),
    ]
    figures = model_figures(reports)
    # (9 + 1 + 14) of 40: a module without a score (mutation off) does not count.
    assert figures["a/coder"].mutation_score == 60.0
    assert figures["b/general"].mutation_score == 10.0
    assert system_figures(reports).mutation_score == round(100 * 27 / 70, 2)
    assert model_figures(REPORTS)["fast/coder"].mutation_score is None


def test_the_metrics_table_shows_the_mutation_score_per_model():
    from rich.console import Console

    from covsweep.views import metrics_table

    reports = [report("r1", [_scored("a/coder", 9, 1, 20)])]
    console = Console(width=200, record=True)
    console.print(metrics_table(system_figures(reports), list(model_figures(reports).values())))
    text = console.export_text()
    rows = {line.split("│")[1].strip(): line.split("│")[-2].strip() for line in text.splitlines() if "│" in line}
    assert rows["a/coder"] == rows["whole system"] == "50.0"
    assert "mutation %" in text
