"""`make bench`, offline generators: Pynguin alone, the examples generator alone, and both (the
examples generator first, Pynguin on what is left, best per module test by test), with the same
wall-clock budget per module, on small real PyPI packages covsweep was not tuned to.

Each package is downloaded at benchmark time (`pip download --no-binary :all:`, pinned), its own
tests removed; its largest modules (by statements, --modules-per-package) are processed. For each
module and strategy: the candidate tests go through covsweep's filter (tasks/coverage/filtering.py:
every rerun passes, adds coverage), the kept tests are written to one file, and that file alone is
measured again by a fresh pytest + coverage run in the sandbox: the line and branch figures below
are that measurement, import-time lines included. The mutation score comes from tasks.mutation
(branch h7-mutation) where it is present, else it is null.

Writes JSON to bench/results/offline-<timestamp>.json and bench/results/offline-latest.json and
prints a table. Needs Docker and the sandbox image (`make image`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tasks.core.errors import ModuleError  # noqa: E402
from tasks.core.models import FileCoverage, Module, Project, SandboxConfig  # noqa: E402
from tasks.core.settings import load  # noqa: E402
from tasks.coverage.filtering import Covered, filter_tests  # noqa: E402
from tasks.coverage.measurement import measure  # noqa: E402
from tasks.coverage.testfile import TestFileBuilder  # noqa: E402
from tasks.generators.examples import EXAMPLES_SHARE, generate_with_examples  # noqa: E402
from tasks.generators.pynguin import generate_with_pynguin  # noqa: E402
from tasks.project.discover import discover  # noqa: E402
from tasks.sandbox.images import ensure_sandbox_image  # noqa: E402
from tasks.sandbox.runner import prepare_workspace  # noqa: E402

RESULTS = BENCH / "results"
SCHEMA = "covsweep.bench.offline/1"
# String- and regex-heavy packages and an ordinary one. webcolors, semver and cachetools were not looked
# at while tuning; parse was first run here and its README showed four bugs of README replay, fixed since.
PACKAGES = {"parse": "1.22.4", "webcolors": "25.10.0", "semver": "3.1.2", "cachetools": "8.0.2"}
KINDS = {"parse": "string", "webcolors": "string", "semver": "string", "cachetools": "ordinary"}
STRATEGIES = ("pynguin", "examples", "both")
RERUNS = 3
# Pynguin's wall time is about its search plus covsweep's mutation allowance (half the search) plus start-up.
PYNGUIN_OVERHEAD_S = 10
EXAMPLES_OVERHEAD_S = 8
TEST_DIRS = {"tests", "test", "testing"}


def fetch(name: str, version: str, into: Path) -> Path:
    """The package's sdist, unpacked, without its tests: a project as a user would hand it over."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{name}=={version}",
            "-d",
            into,
        ],
        check=True,
    )
    archive = next(into.glob(f"{name}-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    root = into / f"{name}-{version}"
    for path in sorted(root.rglob("*"), reverse=True):
        is_test = (
            path.name in TEST_DIRS
            or path.name == "conftest.py"
            or (path.suffix == ".py" and (path.name.startswith("test_") or path.name.endswith("_test.py")))
        )
        if is_test and path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def pynguin_search_s(budget: float) -> int:
    return max(5, int((budget - PYNGUIN_OVERHEAD_S) / 1.5))


def generate(strategy: str, config: SandboxConfig, project: Project, module: Module, workspace: Path, budget: float):
    """The candidate files of one strategy, in the order they are filtered, and the seconds spent."""
    if strategy == "pynguin":
        search = pynguin_search_s(budget)
        made = [generate_with_pynguin(config, project, module, workspace, seed=1, search_s=search, timeout=budget + 60)]
    elif strategy == "examples":
        examples_s = budget - EXAMPLES_OVERHEAD_S
        made = [generate_with_examples(config, project, module, workspace, seed=1, budget_s=examples_s)]
    else:
        made = generate_both(config, project, module, workspace, budget)
    return [m.file for m in made], sum(m.duration_s for m in made)


def generate_both(config: SandboxConfig, project: Project, module: Module, workspace: Path, budget: float) -> list:
    """The examples generator on its share of the budget, Pynguin on what is left; as in the module
    loop, one that fails leaves what the other made."""
    made = []
    examples_s = budget * EXAMPLES_SHARE - EXAMPLES_OVERHEAD_S
    try:
        made.append(generate_with_examples(config, project, module, workspace, seed=2, budget_s=examples_s))
    except ModuleError:
        pass  # nothing recorded: Pynguin gets the whole budget
    search = pynguin_search_s(budget - sum(m.duration_s for m in made))
    try:
        made.append(
            generate_with_pynguin(config, project, module, workspace, seed=2, search_s=search, timeout=budget + 60)
        )
    except ModuleError:
        if not made:
            raise
    return made


def keep_best(
    config: SandboxConfig, project: Project, module: Module, baseline: FileCoverage, candidates: list[Path]
) -> tuple[str, dict]:
    """Each candidate through covsweep's filter against what the ones before kept; the kept tests as one file."""
    builder, covered, counts = TestFileBuilder(), Covered.of(baseline), {"proposed": 0, "accepted": 0}
    for candidate in candidates:
        result = filter_tests(config, project, module, candidate, baseline, covered, RERUNS, 300)
        builder.add(candidate.read_text(), set(result.kept))
        covered = result.covered
        counts = {k: counts[k] + getattr(result.counts, k) for k in counts}
    return (builder.render() if builder.body else ""), counts


def mutation_score(config, project, module, test_file: Path, workspace: Path) -> float | None:
    """The hook for tasks.mutation (branch h7-mutation); None until it is merged."""
    try:
        run = importlib.import_module("tasks.mutation.run")
    except ImportError:
        return None
    scored = run.mutate_module(config, project, module, [test_file], workspace, max_mutants=30, timeout=600)
    return scored.score.score


def measured(config, project: Project, module: Module, source: str, workspace: Path) -> dict:
    """The kept tests measured on their own, by a fresh pytest + coverage run: what a user would get."""
    if not source:
        return {"line": 0.0, "branch": 0.0, "mutation": None, "tests": 0}
    tests = prepare_workspace(workspace / "kept")
    test_file = tests / f"test_{module.dotted.replace('.', '_')}_kept.py"
    test_file.write_text(source)
    measurement = measure(config, project, [test_file], workspace / "measure", 300)
    coverage = measurement.coverage.files[module.path].percentages()
    return {
        "line": coverage.line,
        "branch": coverage.branch,
        "mutation": mutation_score(config, project, module, test_file, workspace / "mutation"),
        "tests": source.count("\ndef test_") + source.count("\n    def test_"),
        "failed_in_final_run": sum(len(v) for v in measurement.failed_tests.values()),
    }


def run_strategy(strategy, config, project, module, baseline, budget, workspace) -> dict:
    prepare_workspace(workspace)
    started = time.monotonic()
    try:
        candidates, generate_s = generate(strategy, config, project, module, workspace, budget)
    except ModuleError as exc:
        return {"error": f"{exc.info.type}: {exc.info.message}", "line": 0.0, "branch": 0.0, "mutation": None}
    source, counts = keep_best(config, project, module, baseline, candidates)
    row = measured(config, project, module, source, workspace)
    return row | counts | {"generate_s": round(generate_s, 1), "total_s": round(time.monotonic() - started, 1)}


def largest_modules(config, project: Project, workspace: Path, count: int) -> list[tuple[Module, FileCoverage]]:
    baseline = measure(config, project, [], workspace, 300).coverage.files
    modules = [m for m in project.modules if m.path in baseline and baseline[m.path].statements]
    modules.sort(key=lambda m: (-len(baseline[m.path].statements), m.path))
    return [(m, baseline[m.path]) for m in modules[:count]]


def bench_package(name, version, config, args, work: Path) -> list[dict]:
    project = discover(fetch(name, version, prepare_workspace(work / "download")))
    rows = []
    for module, baseline in largest_modules(config, project, work / "baseline", args.modules_per_package):
        for strategy in args.strategies:
            print(f"  {name} {module.path} {strategy} ...", flush=True)
            row = run_strategy(
                strategy, config, project, module, baseline, args.budget, work / module.dotted / strategy
            )
            rows.append({"package": f"{name}=={version}", "module": module.path, "strategy": strategy} | row)
            print(f"    {rows[-1]}", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| package | module | strategy | line % | branch % | mutation % | tests kept | generate s |",
        "|---" * 8 + "|",
    ]
    for r in rows:
        mutation = "n/a" if r.get("mutation") is None else f"{r['mutation']:.1f}"
        lines.append(
            f"| {r['package']} | {r['module']} | {r['strategy']} | {r['line']:.1f} | {r['branch']:.1f} | {mutation} "
            f"| {r.get('tests', 0)} | {r.get('generate_s', 'error')} |"
        )
    failed = {r["module"] for r in rows if r["strategy"] == "pynguin" and r.get("error")}
    groups = {
        "all modules": lambda r: True,
        "modules Pynguin ran on": lambda r: r["module"] not in failed,
        "string/regex modules": lambda r: KINDS[r["package"].split("==")[0]] == "string",
        "ordinary modules": lambda r: KINDS[r["package"].split("==")[0]] == "ordinary",
    }
    for label, chosen in groups.items():
        lines += _means(label, [r for r in rows if chosen(r)])
    return "\n".join(lines)


def _means(label: str, rows: list[dict]) -> list[str]:
    lines = []
    for strategy in sorted({r["strategy"] for r in rows}, key=STRATEGIES.index):
        mine = [r for r in rows if r["strategy"] == strategy]
        line, branch = (sum(r[k] for r in mine) / len(mine) for k in ("line", "branch"))
        scored = [r["mutation"] for r in mine if r.get("mutation") is not None]
        mutation = f"{sum(scored) / len(scored):.1f}" if scored else "n/a"
        timed = [r["generate_s"] for r in mine if "generate_s" in r]
        seconds = sum(timed) / len(timed) if timed else 0.0
        lines.append(
            f"| mean, {label} ({len(mine)}) | | {strategy} | {line:.1f} | {branch:.1f} | {mutation} | | {seconds:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget", type=float, default=60, help="wall-clock seconds of generation per module and strategy"
    )
    parser.add_argument("--modules-per-package", type=int, default=2)
    parser.add_argument("--packages", nargs="*", default=list(PACKAGES), help="names from the pinned list")
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--table", type=Path, help="print the table of an earlier result file and stop")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())["rows"]))
        return
    config = SandboxConfig(kind="docker", image=ensure_sandbox_image(load()))
    work = Path(tempfile.mkdtemp(prefix="covsweep-bench-offline-"))
    work.chmod(0o755)
    started = datetime.now(UTC)
    rows = []
    try:
        for name in args.packages:
            print(f"{name}=={PACKAGES[name]}", flush=True)
            rows += bench_package(name, PACKAGES[name], config, args, work / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "schema": SCHEMA,
        "started_at": started.isoformat(),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "budget_s_per_module": args.budget,
        "reruns": RERUNS,
        "image": config.image,
        "rows": rows,
        "table": table(rows),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2)
    (RESULTS / f"offline-{started.strftime('%Y%m%dT%H%M%S')}.json").write_text(text)
    (RESULTS / "offline-latest.json").write_text(text)
    print(report["table"])


if __name__ == "__main__":
    main()
