"""The pull-request summary: a GitHub-flavoured table of the changed modules and where the tests are."""

from __future__ import annotations

from markdown_it import MarkdownIt

from tasks.core import models as schema
from tasks.core.models import (
    Coverage,
    Delivery,
    DiffCoverage,
    ErrorInfo,
    Issue,
    Metadata,
    ModuleResult,
    MutationScore,
    Report,
    Source,
    TotalDiff,
    Totals,
    Validation,
)
from tasks.project.changes import NOT_CHANGED
from tasks.reporting.summary import summary_markdown


def module(path: str, **fields) -> ModuleResult:
    return ModuleResult(module=path, status="improved", success=True, **fields)


def report(**fields) -> Report:
    changed = module(
        "pkg/calc.py",
        coverage_before=Coverage(line=40.0, branch=25.0),
        coverage=Coverage(line=90.0, branch=75.0),
        tests=schema.TestCounts(proposed=5, accepted=3),
        diff=DiffCoverage(lines=4, covered_before=1, covered_after=3, percent_before=25.0, percent_after=75.0),
        mutation=MutationScore(mutants=10, killed=8, survived=2, score=80.0),
        metadata=Metadata(tokens_used=1200, cost=0.0123),
    )
    failed = ModuleResult(
        module="pkg/io.py",
        status="failed",
        success=False,
        error=ErrorInfo(type="timeout", message="no answer in\n300 s"),
        diff=DiffCoverage(lines=0, percent_before=100.0, percent_after=100.0),
    )
    unchanged = ModuleResult(
        module="pkg/keep.py",
        status="skipped",
        success=True,
        validation=Validation(issues=[Issue(level="INFO", rule=NOT_CHANGED, message="not changed since main")]),
    )
    fields.setdefault(
        "totals",
        Totals(
            modules=3,
            succeeded=2,
            failed=1,
            tests_accepted=3,
            line_before=50.0,
            line_after=80.0,
            branch_before=30.0,
            branch_after=60.0,
            tokens_used=1200,
            cost_usd=0.0123,
            mutation_score=80.0,
            diff=TotalDiff(
                ref="origin/main", lines=4, covered_before=1, covered_after=3, percent_before=25.0, percent_after=75.0
            ),
        ),
    )
    return Report(
        run_id="r1",
        target="/src/proj",
        generator="llm",
        coverage_target=80.0,
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:01:33+00:00",
        duration_s=93.2,
        modules=[changed, failed, unchanged],
        **fields,
    )


def table(markdown: str) -> list[list[str]]:
    """The rows of the first table as GitHub renders it (header first)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    rows, row = [], None
    for i, token in enumerate(tokens):
        if token.type == "tr_open":
            row = []
        elif token.type in ("th_open", "td_open"):
            row.append(tokens[i + 1].content)
        elif token.type == "tr_close":
            rows.append(row)
    return rows


def test_the_summary_has_a_row_per_changed_module_with_its_figures():
    text = summary_markdown(
        report(
            source=Source(repository="https://example.com/p.git", commit="0123456789abcdef"),
            delivery=Delivery(kind="patch", patch=".covsweep/covsweep.patch"),
        ),
        delivery_hint="Download it from the artifact `covsweep-patch`.",
    )

    assert text.startswith("## covsweep: diff coverage 25% → 75% since `origin/main`\n")
    assert table(text) == [
        ["module", "status", "line %", "branch %", "changed lines covered", "tests", "mutation"],
        ["`pkg/calc.py`", "improved", "40.0 → 90.0", "25.0 → 75.0", "1/4 → 3/4 (75%)", "3", "80%"],
        ["`pkg/io.py`", "failed (timeout)", "0.0 → 0.0", "0.0 → 0.0", "no executable lines", "0", ""],
        ["**total**", "2/3 ok", "50.0 → 80.0", "30.0 → 60.0", "1/4 → 3/4 (75%)", "3", "80%"],
    ]
    assert "1 module not changed since `origin/main`: skipped." in text
    assert "- `pkg/io.py` failed: timeout: no answer in 300 s" in text
    assert (
        "Generated tests: the patch `.covsweep/covsweep.patch` (`git apply` it at commit `0123456789ab`). "
        "Download it from the artifact `covsweep-patch`." in text
    )
    assert "Generator `llm`, 93 s, $0.0123 (1,200 LLM tokens)." in text


def test_gates_not_met_are_on_top():
    failure = "covsweep: gate --fail-under-diff: diff coverage 75% (3 of 4 changed executable lines since origin/main) is below 80%"

    text = summary_markdown(report(), failed_gates=[failure])

    assert text.splitlines()[2] == f"> :x: {failure}"


def test_a_run_without_changed_since_or_mutation_has_neither_column():
    plain = report(totals=Totals(modules=3, succeeded=2, failed=1, line_before=50.0, line_after=80.0))
    for m in plain.modules:
        m.diff, m.mutation, m.validation = None, None, Validation()

    text = summary_markdown(plain)

    assert text.startswith("## covsweep: line coverage 50.0% → 80.0%\n")
    assert table(text)[0] == ["module", "status", "line %", "branch %", "tests"]
    assert len(table(text)) == 5  # header, three modules, total
    assert "not changed" not in text


def test_where_the_tests_are_for_a_branch_and_for_written_files():
    on_branch = summary_markdown(
        report(delivery=Delivery(kind="branch", branch="covsweep/pr-7", commit="feedface" * 5))
    )
    written = report(delivery=Delivery(kind="write"))
    written.modules[0].generated_files = ["tests/generated/test_pkg_calc.py"]

    assert "Generated tests: branch `covsweep/pr-7` (commit `feedfacefeed`)." in on_branch
    assert "Generated tests written to `tests/generated/test_pkg_calc.py`." in summary_markdown(written)
    assert "No generated test was kept." in summary_markdown(report())
