"""`make bench`, offline generators: Pynguin alone against covsweep's offline round (the examples
generator first, Pynguin on the time and the lines it leaves, best per module test by test), with the
same wall-clock budget per module, on small real PyPI packages covsweep was not tuned to
(`--strategies examples` adds the examples generator alone).

Each package is downloaded at benchmark time (`pip download --no-binary :all:`, pinned), its own
tests removed; its largest modules (by statements, --modules-per-package) are processed. For each
module and strategy: each candidate file goes through covsweep's filter (tasks/coverage/filtering.py:
every rerun passes, adds coverage) against what the one before kept, Pynguin aimed as covsweep's
round aims it (the lines still missed), the kept tests are written to one file, and that file alone
is measured again by a fresh pytest + coverage run in the sandbox (line and branch, import-time
lines included) and scored by tasks.mutation (30 mutants, mutmut): what a user would get.

Writes JSON to bench/results/offline-<timestamp>.json and bench/results/offline-latest.json and
prints a table. Needs Docker and the sandbox image (`make image`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from tasks.core.errors import ModuleError  # noqa: E402
from tasks.core.models import FileCoverage, Module, Project, SandboxConfig  # noqa: E402
from tasks.core.options import RunOptions  # noqa: E402
from tasks.core.settings import load  # noqa: E402
from tasks.coverage.filtering import Covered, filter_tests  # noqa: E402
from tasks.coverage.measurement import measure  # noqa: E402
from tasks.coverage.testfile import TestFileBuilder  # noqa: E402
from tasks.generators.examples import EXAMPLES_SHARE, generate_with_examples  # noqa: E402
from tasks.generators.pynguin import Aim, generate_with_pynguin  # noqa: E402
from tasks.generators.rounds import pynguin_aim  # noqa: E402
from tasks.mutation.run import mutate_module  # noqa: E402
from tasks.project.discover import discover  # noqa: E402
from tasks.sandbox.images import ensure_sandbox_image  # noqa: E402
from tasks.sandbox.runner import prepare_workspace  # noqa: E402
from tests.helpers import download_sdist  # noqa: E402

RESULTS = BENCH / "results"
SCHEMA = "covsweep.bench.offline/1"
# String- and regex-heavy packages and an ordinary one. webcolors, semver and cachetools were not looked
# at while tuning; parse was first run here and its README showed four bugs of README replay, fixed since.
PACKAGES = {"parse": "1.22.4", "webcolors": "25.10.0", "semver": "3.1.2", "cachetools": "8.0.2"}
KINDS = {"parse": "string", "webcolors": "string", "semver": "string", "cachetools": "ordinary"}
STRATEGIES = ("pynguin", "examples", "both")
DEFAULT_STRATEGIES = ("pynguin", "both")  # Pynguin alone against covsweep's offline round
RERUNS = 3
MUTANTS = 30  # covsweep's default --mutants
COVERAGE_TARGET = RunOptions.model_fields["coverage_target"].default
# Pynguin's wall time is about its search plus covsweep's mutation allowance (half the search) plus start-up.
PYNGUIN_OVERHEAD_S = 10
EXAMPLES_OVERHEAD_S = 8
TEST_DIRS = {"tests", "test", "testing"}


def fetch(name: str, version: str, into: Path) -> Path:
    """The package's sdist, unpacked, without its tests: a project as a user would hand it over."""
    root = download_sdist(name, version, into)
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


class Kept:
    """The module's kept tests so far: each candidate goes through covsweep's filter against them."""

    def __init__(self, config: SandboxConfig, project: Project, module: Module, baseline: FileCoverage):
        self.config, self.project, self.module, self.baseline = config, project, module, baseline
        self.builder, self.covered = TestFileBuilder(), Covered.of(baseline)
        self.counts = {"proposed": 0, "accepted": 0}

    def add(self, candidate: Path) -> None:
        result = filter_tests(
            self.config, self.project, self.module, candidate, self.baseline, self.covered, RERUNS, 300
        )
        self.builder.add(candidate.read_text(), set(result.kept))
        self.covered = result.covered
        self.counts = {k: self.counts[k] + getattr(result.counts, k) for k in self.counts}

    def aim(self) -> Aim:
        """Where covsweep's Pynguin round would aim after what is kept so far (default --coverage-target)."""
        job = SimpleNamespace(baseline=self.baseline, changed_lines=None, coverage_target=COVERAGE_TARGET)
        return pynguin_aim(job, self.covered, None)


def run_pynguin(config, project, module, workspace, budget: float, kept: Kept):
    search = pynguin_search_s(budget)
    return generate_with_pynguin(
        config, project, module, workspace, seed=1, search_s=search, timeout=budget + 60, aim=kept.aim()
    )


def run_examples(config, project, module, workspace, budget: float, kept: Kept):
    return generate_with_examples(config, project, module, workspace, seed=1, budget_s=budget - EXAMPLES_OVERHEAD_S)


GENERATORS = {"pynguin": run_pynguin, "examples": run_examples}
# Each strategy's generators in order, with the share of the budget the first may take; "both" is
# covsweep's offline round: the examples generator first, Pynguin on the time and the lines it leaves.
PLAN = {
    "pynguin": [("pynguin", 1.0)],
    "examples": [("examples", 1.0)],
    "both": [("examples", EXAMPLES_SHARE), ("pynguin", 1.0)],
}


def generate_and_keep(strategy: str, config, project, module, baseline, budget: float, workspace: Path):
    """The strategy's candidates, each filtered against what the ones before kept; as in the module loop,
    one that fails leaves what the other made. Raises the last ModuleError when none made a file."""
    kept, spent, failure = Kept(config, project, module, baseline), 0.0, None
    for name, share in PLAN[strategy]:
        try:
            made = GENERATORS[name](config, project, module, workspace, (budget - spent) * share, kept)
        except ModuleError as exc:
            failure = exc
            continue
        spent += made.duration_s
        kept.add(made.file)
    if spent == 0.0 and failure is not None:
        raise failure
    return kept, spent


def mutation_score(config, project, module, test_file: Path, workspace: Path) -> float:
    scored = mutate_module(config, project, module, [test_file], workspace, max_mutants=MUTANTS, timeout=600)
    return scored.score.score


def measured(config, project: Project, module: Module, source: str, workspace: Path) -> dict:
    """The kept tests measured on their own, by a fresh pytest + coverage run: what a user would get."""
    if not source:
        return {"line": 0.0, "branch": 0.0, "mutation": 0.0, "tests": 0}  # no test kills a mutant
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
        kept, generate_s = generate_and_keep(strategy, config, project, module, baseline, budget, workspace)
    except ModuleError as exc:
        return {"error": f"{exc.info.type}: {exc.info.message}", "line": 0.0, "branch": 0.0, "mutation": 0.0}
    row = measured(config, project, module, kept.builder.render() if kept.builder.body else "", workspace)
    return row | kept.counts | {"generate_s": round(generate_s, 1), "total_s": round(time.monotonic() - started, 1)}


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
    parser.add_argument("--strategies", nargs="*", default=list(DEFAULT_STRATEGIES), choices=STRATEGIES)
    parser.add_argument(
        "--table", type=Path, nargs="+", help="print the table of earlier result files' rows together and stop"
    )
    args = parser.parse_args()
    if args.table:
        print(table([row for path in args.table for row in json.loads(path.read_text())["rows"]]))
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
        "mutants": MUTANTS,
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
