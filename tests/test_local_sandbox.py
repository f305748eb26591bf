"""`--sandbox local`, for hosts without Docker: the same pipeline as subprocesses, with a warning."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli


@pytest.mark.server
def test_local_sandbox_raises_coverage_and_says_it_is_not_isolated(example, pynguin, sandbox_image, tmp_path):
    report_path = tmp_path / "report.json"
    result = run_cli(
        "run",
        str(example),
        "--sandbox",
        "local",
        "--timeout",
        "90",
        "--report",
        str(report_path),
        env={"COVSWEEP_PYNGUIN": pynguin},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "NOT isolated" in result.stdout + result.stderr
    totals = json.loads(report_path.read_text())["totals"]
    assert totals["line_after"] > totals["line_before"] and totals["tests_accepted"] > 0


def test_local_sandbox_without_pynguin_is_refused(example):
    result = run_cli("run", str(example), "--sandbox", "local", env={"COVSWEEP_PYNGUIN": "/nonexistent/pynguin"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "COVSWEEP_PYNGUIN" in result.stderr
