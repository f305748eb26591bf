"""Turn the module results and the final measurement into the report.

A generated test that passed alone can fail in the project's own suite (its conftest fixtures,
shared state, test order): such tests are dropped one by one and what is left is measured again, so
that every figure of the report is a measurement of the files left on disk."""

from __future__ import annotations

import ast
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from tasks.core.log import get_logger
from tasks.core.models import FileCoverage, Issue, ModuleResult, Report, TotalDiff, Validation, now
from tasks.core.plan import Plan
from tasks.core.testfiles import is_test_class, is_test_function, test_names
from tasks.coverage.diff import project_diff
from tasks.coverage.ledger import Content, record_concluded
from tasks.coverage.measurement import Measurement
from tasks.coverage.testfile import TestFileBuilder
from tasks.coverage.validation import SHOWN, check_file, score
from tasks.delivery.write import Written, written_body
from tasks.reporting.breakage import RunWith, by_file, file_of, find_culprits, newly_broken
from tasks.reporting.report import totals

# A rewritten file whose tests still fail (they fail only after other tests ran) is rewritten at
# most this often, then removed: each rewrite costs one more run of the whole suite.
MAX_REWRITES = 2

MeasureAgain = Callable[[int], Measurement]  # the n-th measurement of the project after a change on disk


class Settled(BaseModel):
    """The measurement taken after the last change on disk, and the changes."""

    final: Measurement
    dropped: dict[str, list[str]] = {}  # written file -> its tests that failed in the project's suite
    breaking: dict[str, list[str]] = {}  # written file -> its tests that made the project's own tests fail
    broken: list[str] = []  # the project's own tests they made fail
    removed: dict[str, str] = {}  # written file -> why it was removed
    bisections: int = 0


class Drops(BaseModel):
    """The tests to drop next: those failing in the suite, or those breaking the project's tests."""

    tests: dict[Path, list[str]]
    breaking: bool = False


def drop_tests(path: Path, names: list[str]) -> bool:
    """Rewrite a generated file without the tests `names`; what comes before its first test (the
    marker, the preamble, the imports) stays as it was. False, and nothing written, when no test
    would be left."""
    text = path.read_text()
    keep = set(test_names(text)) - set(names)
    if not keep:
        return False
    first = next(n for n in ast.parse(text).body if is_test_function(n) or is_test_class(n))
    start = min([first.lineno] + [d.lineno for d in first.decorator_list])
    lines = text.splitlines()
    builder = TestFileBuilder()
    builder.add("\n".join(lines[start - 1 :]), keep)
    head, tests = "\n".join(lines[: start - 1]).rstrip("\n"), builder.render().lstrip("\n")
    tmp = path.with_suffix(".py.covsweep-tmp")
    tmp.write_text(f"{head}\n\n\n{tests}")
    os.replace(tmp, path)
    return True


def _failing(written: list[Written], final: Measurement) -> dict[Path, list[str]]:
    return {
        w.path: final.failed_tests[str(w.path)]
        for w in written
        if w.path is not None and w.path.exists() and final.failed_tests.get(str(w.path))
    }


def _drop(settled: Settled, path: Path, names: list[str], rewrite: bool, breaking: bool) -> None:
    why = "made the project's own tests fail" if breaking else "failed in the project's suite"
    (settled.breaking if breaking else settled.dropped).setdefault(str(path), []).extend(names)
    get_logger("covsweep").warning("%s: %s %s: dropped", path.name, ", ".join(names), why)
    if not rewrite:
        settled.removed[str(path)] = f"its tests still {why} after {MAX_REWRITES} rewrites"
    elif drop_tests(path, names):
        return
    else:
        settled.removed[str(path)] = f"every one of its tests {why}"
    path.unlink()


def _breaking(
    written: list[Written], target: Path, baseline: Measurement, settled: Settled, run_with: RunWith | None
) -> dict[Path, list[str]]:
    """The generated tests that make project tests fail which passed without them, found by bisection."""
    broken = newly_broken(baseline, settled.final)
    if run_with is None or not broken or settled.bisections >= MAX_REWRITES:
        return {}
    settled.bisections += 1
    ours = {w.path for w in written if w.path is not None and w.path.exists()}
    suspects = [t for t in settled.final.order if t not in broken and file_of(target, t) in ours]
    culprits = find_culprits(settled.final, suspects, broken, run_with)
    if culprits:
        settled.broken += [t for t in broken if t not in settled.broken]
    else:
        get_logger("covsweep").warning("project tests fail, but not because of a generated test: %s", broken[:5])
    return by_file(target, culprits)


def _next_drops(
    written: list[Written], target: Path, baseline: Measurement, settled: Settled, run_with: RunWith | None
) -> Drops | None:
    if failing := _failing(written, settled.final):
        return Drops(tests=failing)
    if breaking := _breaking(written, target, baseline, settled, run_with):
        return Drops(tests=breaking, breaking=True)
    return None


def settle(
    written: list[Written],
    target: Path,
    baseline: Measurement,
    final: Measurement,
    measure_again: MeasureAgain,
    run_with: RunWith | None = None,
) -> Settled:
    """Drop the written tests that fail in the project's suite, then those that make the project's own
    tests fail, and measure again, until neither is left. After MAX_REWRITES a file that still fails is
    removed, and bisections stop: each later step removes one more file, so this ends."""
    settled, attempt = Settled(final=final), 0
    while drops := _next_drops(written, target, baseline, settled, run_with):
        attempt += 1
        for path, names in drops.tests.items():
            _drop(settled, path, names, attempt <= MAX_REWRITES, drops.breaking)
        settled.final = measure_again(attempt)
    return settled


def _count_dropped(result: ModuleResult, dropped: list[str], removed: bool) -> None:
    """Tests this run accepted that are gone now count as failing; an earlier run's are not this run's."""
    ours = set(test_names(result.accepted_source)) if result.accepted_source else set()
    gone = min(result.tests.accepted, result.tests.accepted if removed else len(ours & set(dropped)))
    result.tests = result.tests.model_copy(
        update={"accepted": result.tests.accepted - gone, "rejected_failing": result.tests.rejected_failing + gone}
    )


def _withdraw_mutation(result: ModuleResult) -> None:
    """The score was of tests the file no longer holds: no figure rather than one of other tests."""
    if result.mutation is None:
        return
    result.mutation = None
    message = "no mutation score: tests it was measured with were dropped from the file afterwards"
    result.validation.issues.append(Issue(level="INFO", rule="mutation-withdrawn", message=message))


def _drop_issues(settled: Settled, path: str, level: str) -> list[Issue]:
    """One issue per dropped test of the file at `path`, saying why it went."""
    issues = [
        Issue(
            level=level,
            rule="passes-in-suite",
            message=f"{name} passed alone but failed in the project's suite: dropped",
        )
        for name in settled.dropped.get(path, [])
    ]
    if breaking := settled.breaking.get(path, []):
        shown = ", ".join(settled.broken[:SHOWN]) + (
            f" and {len(settled.broken) - SHOWN} more" if len(settled.broken) > SHOWN else ""
        )
        message = (
            f"{', '.join(breaking)} made the project's own tests fail ({shown}): dropped, the project's tests untouched"
        )
        issues.append(Issue(level=level, rule="breaks-project-tests", message=message))
    return issues


def _review(result: ModuleResult, written: Written, settled: Settled, plan: Plan) -> None:
    if written.refused:
        result.validation.issues.append(Issue(level="ERROR", rule="own-files-only", message=written.refused))
        result.status, result.success = "needs_review", False
        return
    path = str(written.path)
    dropped, removed = settled.dropped.get(path, []) + settled.breaking.get(path, []), settled.removed.get(path)
    _count_dropped(result, dropped, removed is not None)
    if dropped or removed:
        _withdraw_mutation(result)
    issues = _drop_issues(settled, path, "ERROR" if removed else "WARNING")
    if removed:
        issues.append(Issue(level="ERROR", rule="file-removed", message=f"{written.path.name} removed: {removed}"))
    else:
        issues += check_file(written.path, settled.final.failed_tests.get(path, [])).issues
    issues = result.validation.issues + issues  # the module task's own warnings count too
    result.validation = Validation(score=score(issues), issues=issues)
    if removed:
        # A generated test that fails in the project's own suite would break the user's CI.
        result.status, result.success = "needs_review", False
        return
    target = plan.project.target
    result.generated_files = [str(written.path.relative_to(target) if written.path.is_relative_to(target) else path)]


def _take_measured(result: ModuleResult, measured: FileCoverage | None, written: bool, coverage_target: float) -> None:
    """The module's figures as the last measurement has them: its status follows when it got tests."""
    if measured is None:
        return
    result.coverage = measured.percentages()
    # A module stopped mid-way by a run-wide stop has success False and its tests on disk: its status follows too.
    if written and result.status not in ("skipped", "needs_review", "failed"):
        result.status = result.coverage_status(coverage_target)


def record_in_ledger(plan: Plan, results: list[ModuleResult], written: list[Written]) -> None:
    """Each processed module as the conclusion leaves it, its tests those left on disk: a later run skips
    the done ones while their source and file stay so, and does again one whose every test was dropped."""
    files = {w.module: w.path for w in written if w.path is not None and w.path.exists()}
    modules = {m.path: m for m in plan.project.modules}
    for result in results:
        if result.fingerprint and result.module in modules:
            path = files.get(result.module)
            body = written_body(path.read_text()) if path is not None else None
            record_concluded(result, body, Content.of(modules[result.module].file, path))


def diff_coverage(
    plan: Plan, results: list[ModuleResult], baseline: Measurement, final: Measurement
) -> TotalDiff | None:
    """--changed-since: each changed module's diff coverage, set on its result, and the run's; None without it."""
    if plan.changed is None:
        return None
    ref = plan.options.changed_since or ""
    per_module, total = project_diff(ref, plan.changed, baseline.coverage, final.coverage)
    for result in results:
        result.diff = per_module.get(result.module)
    return total


def conclude_run(
    plan: Plan,
    baseline: Measurement,
    final: Measurement,
    results: list[ModuleResult],
    written: list[Written],
    started_at: datetime,
    duration_s: float,
    measure_again: MeasureAgain,
    run_with: RunWith | None = None,
) -> Report:
    """The report; `final` measured the project with `written` on disk, `measure_again` measures it anew,
    `run_with` runs some of its tests (the bisection of generated tests that break the project's)."""
    began = time.monotonic()
    settled = settle(written, plan.project.target, baseline, final, measure_again, run_with)
    by_module = {w.module: w for w in written}
    for result in results:
        if result.module in by_module:
            _review(result, by_module[result.module], settled, plan)
        measured = settled.final.coverage.files.get(result.module)
        _take_measured(result, measured, result.module in by_module, plan.options.coverage_target)
    record_in_ledger(plan, results, written)
    paths = [m.path for m in plan.project.modules]
    figures = totals(
        results,
        [baseline.coverage.files.get(p, FileCoverage()) for p in paths],
        [settled.final.coverage.files.get(p, FileCoverage()) for p in paths],
    )
    # From the same two measurements as the totals: the last one is of the files left on disk.
    figures.diff = diff_coverage(plan, results, baseline, settled.final)
    return Report(
        run_id=plan.run_id,
        target=str(plan.project.target),
        generator=plan.generator,
        coverage_target=plan.options.coverage_target,
        started_at=started_at.isoformat(),
        finished_at=now().isoformat(),
        duration_s=round(duration_s + time.monotonic() - began, 3),
        totals=figures,
        modules=results,
    )
