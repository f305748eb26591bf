"""coverage.py configuration for sandboxed runs, and reading what they measured."""

from __future__ import annotations

import json
from pathlib import Path

from coverage import CoverageData

from tasks.models import Coverage, FileCoverage, Project, ProjectCoverage

Arc = tuple[int, int]


def write_rcfile(workspace: Path, project: Project, *, per_test: bool) -> Path:
    """covsweep's own coverage settings: the project's may lack branch, or measure elsewhere."""
    root = project.import_root
    lines = [
        "[run]", "branch = True", f"source = {root}",
        f"data_file = {workspace / '.coverage'}",
        # Anchored at the import root: `*/tests/*` also matches every file of a project that is
        # checked out below a folder named tests or test, and nothing would be measured.
        "omit =", f"    {root}/**/tests/*", f"    {root}/**/test/*", f"    {root}/**/test_*.py",
        f"    {root}/**/*_test.py", f"    {root}/**/conftest.py", f"    {workspace}/*",
    ]
    if per_test:
        lines.append("dynamic_context = test_function")
    lines += ["", "[report]", "ignore_errors = True", "", "[json]", "show_contexts = False", ""]
    rcfile = workspace / "coveragerc"
    rcfile.write_text("\n".join(lines))
    return rcfile


def _arcs(pairs) -> list[Arc]:
    return [tuple(pair) for pair in pairs]


def _file_coverage(entry: dict) -> FileCoverage:
    functions = {
        name: sorted(fn["executed_lines"] + fn["missing_lines"])
        for name, fn in entry.get("functions", {}).items()
        if name and fn["executed_lines"] + fn["missing_lines"]
    }
    return FileCoverage(
        statements=sorted(entry["executed_lines"] + entry["missing_lines"]),
        executed_lines=entry["executed_lines"],
        branches=sorted(_arcs(entry.get("executed_branches", [])) + _arcs(entry.get("missing_branches", []))),
        executed_branches=_arcs(entry.get("executed_branches", [])),
        functions=functions,
    )


def read_json_report(path: Path, project: Project, cwd: Path) -> ProjectCoverage:
    """Split a coverage.py JSON report into the project's modules."""
    if not path.exists():
        return ProjectCoverage()
    report = json.loads(path.read_text())
    by_file = {m.file: m.path for m in project.modules}
    files = {}
    for name, entry in report.get("files", {}).items():
        module = by_file.get((cwd / name).resolve())
        if module is not None:
            files[module] = _file_coverage(entry)
    totals = report.get("totals", {})
    return ProjectCoverage(
        files=files,
        totals=Coverage(
            line=round(totals.get("percent_statements_covered", 0.0), 2),
            branch=round(totals.get("percent_branches_covered", 0.0), 2),
        ),
    )


def contexts_coverage(data_file: Path, source_file: Path) -> dict[str, tuple[set[int], set[Arc]]]:
    """Lines and arcs of one source file that each test (dynamic context) executed."""
    data = CoverageData(basename=str(data_file))
    data.read()
    measured = {str(Path(f)) for f in data.measured_files()}
    per_test: dict[str, tuple[set[int], set[Arc]]] = {}
    if str(source_file) not in measured:
        return per_test
    for context in sorted(data.measured_contexts()):
        if not context:
            continue
        data.set_query_context(context)
        lines = set(data.lines(str(source_file)) or ())
        arcs = set(data.arcs(str(source_file)) or ())
        per_test[context] = (lines, arcs)
    return per_test
