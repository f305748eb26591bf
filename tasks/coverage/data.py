"""coverage.py configuration for sandboxed runs, and reading what they measured."""

from __future__ import annotations

import json
from pathlib import Path

from coverage import CoverageData

from tasks.core.models import Coverage, FileCoverage, Project, ProjectCoverage, ProjectRef

Arc = tuple[int, int]


def _pattern(path: Path) -> str:
    """`path` as the start of a coverage.py file pattern: a square bracket would open a character class
    (and one alone is an error), so each matches any one character instead."""
    return str(path).replace("[", "?").replace("]", "?")


def write_rcfile(workspace: Path, project: ProjectRef, *, per_test: bool) -> Path:
    """covsweep's own coverage settings: the project's may lack branch, or measure elsewhere. Per test
    (`per_test`), the data is read through coverage.py's API, by the files' absolute names."""
    root_pattern, workspace_pattern = _pattern(project.import_root), _pattern(workspace)
    lines = [
        "[run]",
        "branch = True",
        # Per test only what ran is read: `source` would also list every file of the project as each run
        # saves (for a report's unexecuted files), 2 of a test file's 4.5 s in the sandbox at 2000 modules.
        f"include = {root_pattern}/*" if per_test else f"source = {project.import_root}",
        f"data_file = {workspace / '.coverage'}",
        # Anchored at the import root: `*/tests/*` also matches every file of a project that is
        # checked out below a folder named tests or test, and nothing would be measured.
        "omit =",
        f"    {root_pattern}/**/tests/*",
        f"    {root_pattern}/**/test/*",
        f"    {root_pattern}/**/test_*.py",
        f"    {root_pattern}/**/*_test.py",
        f"    {root_pattern}/**/conftest.py",
        f"    {workspace_pattern}/*",
    ]
    if per_test:
        lines.append("dynamic_context = test_function")
    else:
        # Reported only from the target's folder (coverage json): names relative to it spare the report a
        # lookup from / per file, 80 us each in a container on fuse-overlayfs (a quarter of it at 2000 files).
        lines.append("relative_files = True")
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


def _read(data_file: Path, source_file: Path) -> CoverageData | None:
    """The data file, or None when it did not measure `source_file`."""
    data = CoverageData(basename=str(data_file))
    data.read()
    return data if str(source_file) in {str(Path(f)) for f in data.measured_files()} else None


def _in_context(data: CoverageData, source_file: Path, context: str) -> tuple[set[int], set[Arc]]:
    data.set_query_context(context)
    return set(data.lines(str(source_file)) or ()), set(data.arcs(str(source_file)) or ())


def contexts_coverage(data_file: Path, source_file: Path) -> dict[str, tuple[set[int], set[Arc]]]:
    """Lines and arcs of one source file that each test (dynamic context) executed."""
    data = _read(data_file, source_file)
    if data is None:
        return {}
    return {context: _in_context(data, source_file, context) for context in sorted(data.measured_contexts()) if context}


def outside_tests_coverage(data_file: Path, source_file: Path) -> tuple[set[int], set[Arc]]:
    """Lines and arcs of one source file that ran outside every test (the empty context): what
    importing it runs, its def and class lines, during pytest's collection."""
    data = _read(data_file, source_file)
    return _in_context(data, source_file, "") if data is not None else (set(), set())


def coverage_by_test(data_file: Path) -> dict[str, dict[str, tuple[set[int], set[Arc]]]]:
    """Each test's (dynamic context's) lines and arcs, in every measured file that it executed."""
    data = CoverageData(basename=str(data_file))
    data.read()
    files = sorted(data.measured_files())
    per_test: dict[str, dict[str, tuple[set[int], set[Arc]]]] = {}
    for context in sorted(data.measured_contexts()):
        if not context:
            continue
        data.set_query_context(context)
        covered = {f: (set(data.lines(f) or ()), set(data.arcs(f) or ())) for f in files}
        per_test[context] = {f: sets for f, sets in covered.items() if sets[0] or sets[1]}
    return per_test
