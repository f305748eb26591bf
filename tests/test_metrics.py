"""Figures and model scores from stored reports."""

from __future__ import annotations

from tasks.metrics import model_figures, rank, score_model, system_figures
from tasks.models import Attempt, Coverage, Metadata, ModuleResult, Report, Totals


def module(model: str | None, attempts: list[tuple[str, str, float]], before: float, after: float,
           tokens: int = 100, success: bool = True) -> ModuleResult:
    return ModuleResult(
        module="pkg/m.py", status="improved" if success else "failed", success=success, generator="llm",
        model_used=model, coverage_before=Coverage(line=before), coverage=Coverage(line=after),
        execution_time=10.0, metadata=Metadata(tokens_used=tokens, cost=0.01,
                                               attempts=[Attempt(model=m, outcome=o, duration_s=d)
                                                         for m, o, d in attempts]),
    )


def report(run_id: str, modules: list[ModuleResult]) -> Report:
    return Report(run_id=run_id, target="/p", generator="llm", coverage_target=80, started_at="", finished_at="",
                  duration_s=1.0, totals=Totals(modules=len(modules), line_before=10, line_after=40,
                                                tokens_used=sum(m.metadata.tokens_used for m in modules)),
                  modules=modules)


REPORTS = [
    report("r1", [module("fast/coder", [("slow/general", "timeout", 60.0), ("fast/coder", "ok", 4.0)], 10, 70),
                  module("fast/coder", [("fast/coder", "ok", 6.0)], 0, 50)]),
    report("r2", [module("slow/general", [("slow/general", "ok", 40.0)], 20, 25),
                  module(None, [("slow/general", "rate_limit", 1.0), ("fast/coder", "server", 2.0)], 0, 0,
                         success=False)]),
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
