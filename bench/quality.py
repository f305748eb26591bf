"""What the mutation step costs inside a run, and what mutant-guided refinement gains, on the bundled
example (examples/shop), with the real Docker sandbox, mutmut and pytest.

1. cost: each module of the example through covsweep's module task (`process_module`) with Pynguin,
   --mutation on, the sandbox steps timed as they run: seconds of mutation runs (the score between
   rounds and of the delivered file, and the checks of which tests kill a survivor), seconds of the
   readable rewrite, and their share of the module's time.
2. refinement: the flow `spec-to-production` on shop/discounts.py with the scripted LLM of the tests
   (tests/fake_llm.py): a first answer of tests that call every function and assert nothing, a second
   of tests that check what the functions return. The score after the first round (from the mutants
   the second prompt lists), the score delivered, the tests kept for the mutants they kill; and the
   same run with --mutation off, for the time mutation adds to the module.

Writes JSON to bench/results/quality-<timestamp>.json and bench/results/quality-latest.json, with the
load average: on a shared host it moves the seconds more than anything covsweep does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# The flow runs in this process against a temporary Prefect server of its own, given time to start on
# a loaded host; read by Prefect when it is first imported.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="covsweep-bench-quality-prefect-"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.pop("PREFECT_API_URL", None)

from tasks.core.models import ModuleResult, SandboxConfig  # noqa: E402
from tasks.core.plan import ModuleJob  # noqa: E402
from tasks.core.settings import load  # noqa: E402
from tasks.coverage.measurement import measure  # noqa: E402
from tasks.generators.module import SANDBOX, process_module  # noqa: E402
from tasks.generators.quality import Checks, sandbox_kills, sandbox_mutate, sandbox_readable  # noqa: E402
from tasks.project.discover import discover  # noqa: E402
from tasks.sandbox.images import ensure_sandbox_image  # noqa: E402
from tests.fake_llm import FakeLLM, code_answer  # noqa: E402
from tests.helpers import CALLS_ONLY, CHECKS, SURVIVOR_LINE  # noqa: E402

RESULTS = REPO / "bench" / "results"
SCHEMA = "covsweep.bench.quality/1"


class Timed:
    """Seconds spent in each sandbox step, and the scores of the mutation runs, as they happen."""

    def __init__(self) -> None:
        self.seconds = {"mutate": 0.0, "kills": 0.0, "readable": 0.0}
        self.scores: list[float] = []

    def wrap(self, name: str, step: Callable) -> Callable:
        def timed(*args, **kwargs):
            started = time.monotonic()
            try:
                answer = step(*args, **kwargs)
            finally:
                self.seconds[name] += time.monotonic() - started
            if name == "mutate":
                self.scores.append(answer.score.score)
            return answer

        return timed

    def checks(self) -> Checks:
        return Checks(
            mutate=self.wrap("mutate", sandbox_mutate),
            kills=self.wrap("kills", sandbox_kills),
            readable=self.wrap("readable", sandbox_readable),
        )


def _row(result: ModuleResult, timed: Timed) -> dict:
    mutation_s = timed.seconds["mutate"] + timed.seconds["kills"]
    total = result.execution_time
    return {
        "execution_s": round(total, 2),
        "mutation_s": round(mutation_s, 2),
        "mutation_share": round(mutation_s / total, 3) if total else None,
        "readable_s": round(timed.seconds["readable"], 2),
        "seconds": {k: round(v, 2) for k, v in timed.seconds.items()},
        "mutation_runs": len(timed.scores),
        "scores_per_run": timed.scores,
        "mutation": result.mutation.model_dump() if result.mutation else None,
        "coverage": result.coverage.model_dump(),
        "tests": result.tests.model_dump(),
        "issues": [f"{i.level} {i.rule}" for i in result.validation.issues],
    }


def cost(config: SandboxConfig, scratch: Path, timeout: float) -> dict:
    """Pynguin through the module task on every module of the example, its sandbox steps timed."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE, temporary_settings

    target = scratch / "shop"
    shutil.copytree(REPO / "examples" / "shop", target)
    project = discover(target)
    baseline = measure(config, project, project.test_paths, scratch / "baseline", 300)
    rows = {}
    settings = {PREFECT_LOCAL_STORAGE_PATH: scratch / "results", PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: False}
    with temporary_settings(settings):
        for module in project.modules:
            timed = Timed()
            job = ModuleJob(
                project=project.ref(),
                module=module,
                baseline=baseline.coverage.files.get(module.path),
                generator="pynguin",
                coverage_target=80.0,
                max_iterations=3,
                reruns=3,
                timeout=timeout,
                sandbox=config,
                workspace=scratch / "work" / module.path.replace("/", "__"),
                fingerprint=f"bench-quality-{scratch.name}-{time.time()}-{module.path}",  # never skipped
                mutation=True,
            )
            result = process_module(job, dataclasses.replace(SANDBOX, checks=timed.checks()))
            rows[module.path] = _row(result, timed)
            print(f"  {module.path}: {json.dumps(rows[module.path])}", flush=True)
    total = sum(r["execution_s"] for r in rows.values())
    spent = sum(r["mutation_s"] for r in rows.values())
    return {
        "modules": rows,
        "execution_s": round(total, 2),
        "mutation_s": round(spent, 2),
        "share": round(spent / total, 3),
    }


def _discounts_run(fake: FakeLLM, scratch: Path, mutation: str) -> tuple[ModuleResult, list[str]]:
    from flows.spec_to_production import spec_to_production

    target = scratch / f"shop-{mutation}"
    shutil.copytree(REPO / "examples" / "shop", target)
    fake.requests.clear()
    fake.script(code_answer(CALLS_ONLY), code_answer(CHECKS))
    report = spec_to_production(
        target=str(target),
        modules=["shop/discounts.py"],
        generator="llm",
        models="bench/model",
        llm_base_url=fake.base_url,
        timeout=600,
        max_iterations=2,
        mutation=mutation,
    )
    prompts = [r.body["messages"][-1]["content"] for r in fake.requests]
    return report.modules[0], prompts


def refinement(scratch: Path) -> dict:
    """Scores before and after the round the surviving mutants steered, and the time mutation adds."""
    fake = FakeLLM()
    os.environ["COVSWEEP_LLM_API_KEY"] = "covsweep-bench-key-not-secret"
    try:
        on, prompts = _discounts_run(fake, scratch, "on")
        off, _ = _discounts_run(fake, scratch, "off")
    finally:
        fake.close()
    listed = [line for line in prompts[-1].splitlines() if SURVIVOR_LINE.match(line)] if len(prompts) > 1 else []
    mutants = on.mutation.mutants if on.mutation else 0
    return {
        "rounds": len(prompts),
        "score_after_round_1": round(100 * (mutants - len(listed)) / mutants, 2) if mutants and listed else None,
        "survivors_listed": len(listed),
        "score_delivered": on.mutation.score if on.mutation else None,
        "mutation": on.mutation.model_dump() if on.mutation else None,
        "tests": on.tests.model_dump(),
        "coverage": on.coverage.model_dump(),
        "execution_s": {"mutation_on": on.execution_time, "mutation_off": off.execution_time},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=300.0, help="--timeout per module [300]")
    parser.add_argument("--skip-cost", action="store_true", help="only the refinement part")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    config = SandboxConfig(kind="docker", image=ensure_sandbox_image(load()))
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="covsweep-bench-quality-") as scratch:
        Path(scratch).chmod(0o755)
        result = {"schema": SCHEMA, "at": datetime.now(UTC).isoformat(), "cpu_count": os.cpu_count()}
        if not args.skip_cost:
            print("cost: Pynguin on examples/shop, --mutation on", flush=True)
            result["cost"] = cost(config, Path(scratch) / "cost", args.timeout)
        print("refinement: scripted LLM on shop/discounts.py", flush=True)
        result["refinement"] = refinement(Path(scratch) / "refinement")
    result["loadavg"] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"quality-{stamp}.json", "quality-latest.json"):
        (args.results / name).write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "cost"} | {"cost_share": result.get("cost", {}).get("share")},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
