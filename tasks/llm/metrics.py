"""Per-model and whole-system figures from stored reports, and the model scores they give."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tasks.core.models import MutationScore, Report, pooled_mutation_score

# Weights of a model's score: coverage its tests gained, how often it answered, how fast, fit.
WEIGHTS = {"quality": 0.4, "success": 0.3, "latency": 0.2, "fit": 0.1}
# A gain of this many line-coverage points per module counts as full quality.
FULL_GAIN = 50.0
# An answer this fast (seconds, median) counts as full latency; slower ones score less.
FAST_S = 10.0


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))], 3)


class Figures(BaseModel):
    runs: int = 0
    modules: int = 0
    success_rate: float = 0.0
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    tokens: int = 0
    cost_usd: float = 0.0
    coverage_gained: float = 0.0
    mutation_score: float | None = Field(
        default=None, description="killed (timeouts included) over the mutants of the modules with a score"
    )


class ModelFigures(Figures):
    model: str
    attempts: int = 0


def system_figures(reports: list[Report]) -> Figures:
    modules = [m for r in reports for m in r.modules]
    times = [m.execution_time for m in modules]
    return Figures(
        runs=len(reports),
        modules=len(modules),
        success_rate=round(sum(m.success for m in modules) / len(modules), 3) if modules else 0.0,
        latency_p50_s=_percentile(times, 50),
        latency_p95_s=_percentile(times, 95),
        tokens=sum(r.totals.tokens_used for r in reports),
        cost_usd=round(sum(r.totals.cost_usd for r in reports), 6),
        coverage_gained=round(sum(r.totals.line_after - r.totals.line_before for r in reports), 2),
        mutation_score=pooled_mutation_score([m.mutation for m in modules]),
    )


def model_figures(reports: list[Report]) -> dict[str, ModelFigures]:
    """Attempts give success and latency; modules a model wrote give its tokens, cost and gain."""
    figures: dict[str, ModelFigures] = {}
    durations: dict[str, list[float]] = {}
    ok: dict[str, int] = {}
    runs: dict[str, set[str]] = {}
    written: dict[str, list[MutationScore | None]] = {}
    for report in reports:
        for module in report.modules:
            for attempt in module.metadata.attempts:
                fig = figures.setdefault(attempt.model, ModelFigures(model=attempt.model))
                fig.attempts += 1
                durations.setdefault(attempt.model, []).append(attempt.duration_s)
                ok[attempt.model] = ok.get(attempt.model, 0) + (attempt.outcome == "ok")
                runs.setdefault(attempt.model, set()).add(report.run_id)
            if module.model_used in figures:
                fig = figures[module.model_used]
                fig.modules += 1
                fig.tokens += module.metadata.tokens_used
                fig.cost_usd = round(fig.cost_usd + module.metadata.cost, 6)
                fig.coverage_gained = round(fig.coverage_gained + module.coverage.line - module.coverage_before.line, 2)
                written.setdefault(module.model_used, []).append(module.mutation)
    for model, fig in figures.items():
        fig.runs = len(runs[model])
        fig.success_rate = round(ok[model] / fig.attempts, 3)
        fig.latency_p50_s = _percentile(durations[model], 50)
        fig.latency_p95_s = _percentile(durations[model], 95)
        fig.mutation_score = pooled_mutation_score(written.get(model, []))
    return figures


class ModelScore(BaseModel):
    model: str
    score: float
    parts: dict[str, float]
    reasons: list[str]


def _fit(model: str) -> tuple[float, str]:
    name = model.lower()
    if "coder" in name or "code" in name:
        return 1.0, "a code model"
    return 0.6, "a general model"


def score_model(model: str, fig: ModelFigures | None) -> ModelScore:
    fit, fit_reason = _fit(model)
    if fig is None or fig.attempts == 0:
        parts = {"quality": 0.5, "success": 0.5, "latency": 0.5, "fit": fit}
        reasons = ["no stored runs yet: neutral quality, success and latency", fit_reason]
    else:
        gain = fig.coverage_gained / fig.modules if fig.modules else 0.0
        parts = {
            "quality": round(min(1.0, max(0.0, gain / FULL_GAIN)), 3),
            "success": fig.success_rate,
            "latency": round(FAST_S / max(FAST_S, fig.latency_p50_s), 3),
            "fit": fit,
        }
        reasons = [
            f"{gain:+.1f} line points per module it wrote ({fig.modules})",
            f"{fig.success_rate:.0%} of {fig.attempts} requests answered",
            f"median answer {fig.latency_p50_s:.1f}s",
            fit_reason,
        ]
    score = round(sum(WEIGHTS[k] * v for k, v in parts.items()), 3)
    return ModelScore(model=model, score=score, parts=parts, reasons=reasons)


def rank(chain: list[str], reports: list[Report]) -> list[ModelScore]:
    """The chain, best score first; ties keep the configured order."""
    figures = model_figures(reports)
    scores = [score_model(m, figures.get(m)) for m in chain]
    return sorted(scores, key=lambda s: -s.score)
