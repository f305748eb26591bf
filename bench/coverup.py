"""`make bench`: covsweep side by side with CoverUp (PyPI `coverup`) on the same scripted model.

Generates the 16-module project of bench/llm.py, starts its scripted OpenAI-compatible server (every
answer after 2 s: a test file for the module the prompt names), then runs on a fresh copy each:

* covsweep: `covsweep run TARGET --generator llm --concurrency 4 ...` as bench/llm.py runs it;
* CoverUp: `coverup --package-dir src/benchpkg --model openai/gpt-4o --max-concurrency 4`, from a venv of
  its own under ~/.cache/covsweep/coverup-venv (created on first use: `pip install coverup 'pytest<9'`; CoverUp
  is never part of this repository), with OPENAI_BASE_URL at the server, an OPENAI_API_KEY, and
  TIKTOKEN_CACHE_DIR on a copy of the encodings litellm ships (tiktoken cannot download them here).

Before covsweep's timed run, an untimed one on a one-module project (`--generator none`) creates the
Prefect database in the run's Prefect home, as any earlier run on the machine would have (`--no-warmup`
times covsweep's very first run instead). Modules per minute over each whole run, and the final coverage
of each, measured the same way for both afterwards: plain `coverage run --branch -m pytest` of the
project's tests, generated ones included.
Writes bench/results/coverup-<timestamp>.json and coverup-latest.json. The issue's bar: covsweep at least 2x
CoverUp's modules per minute with at least its final coverage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for entry in (str(BENCH), str(REPO)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from llm import API_KEY, Answering, HostSampler, answers, run_one  # noqa: E402
from run import PYTHON, RESULTS, machine, run_streamed  # noqa: E402
from run import run_covsweep as run_coverage_only  # noqa: E402
from synth import PACKAGE, generate  # noqa: E402

from tests.fake_llm import FakeLLM, Reply  # noqa: E402

SCHEMA = "covsweep.bench.coverup/2"
VENV = Path.home() / ".cache" / "covsweep" / "coverup-venv"
COVERUP_PIN = "coverup==0.6.3"
FILE_IN_PROMPT = re.compile(rf"{PACKAGE}/(mod_\d+)\.py")


class PathAnswering(Answering):
    """CoverUp names the module by its file: the same answer for the module whose path the prompt holds."""

    def __call__(self, request: dict) -> bytes:
        body = request.get("body") or {}
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict))
        if found := FILE_IN_PROMPT.search(text):
            for message in body.get("messages", []):
                if isinstance(message, dict):
                    message["content"] = f"The module under test is `{PACKAGE}.{found.group(1)}`"
        return super().__call__(request)


def coverup_venv(timeout: float) -> Path:
    """CoverUp's own environment, created once; its `coverup` command."""
    command = VENV / "bin" / "coverup"
    if command.exists():
        return command
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", COVERUP_PIN, "pytest<9"], check=True, timeout=timeout)
    return command


def tiktoken_cache(scratch: Path) -> Path:
    """A copy of the tiktoken encodings litellm ships, named the way tiktoken's cache names them."""
    shipped = next((VENV / "lib").glob("python3*/site-packages/litellm/litellm_core_utils/tokenizers"))
    cache = scratch / "tiktoken"
    cache.mkdir()
    for file in shipped.iterdir():
        if re.fullmatch(r"[0-9a-f]{40}", file.name):
            shutil.copyfile(file, cache / file.name)
    return cache


def final_coverage(project: Path) -> dict:
    """The project's line and branch coverage with all its tests, generated ones included, on the host."""
    env = dict(os.environ, PYTHONPATH=str(project / "src"), PYTHONDONTWRITEBYTECODE="1")
    source = f"--source={project / 'src' / PACKAGE}"
    run = [str(PYTHON), "-m", "coverage", "run", "--branch", source, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    tests = subprocess.run([*run, "tests"], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    report = subprocess.run(
        [str(PYTHON), "-m", "coverage", "json", "-q", "-o", "-"], cwd=project, capture_output=True, text=True
    )
    totals = json.loads(report.stdout)["totals"] if report.returncode == 0 else {}
    return {
        "line": round(totals.get("percent_statements_covered", 0.0), 2),
        "branch": round(totals.get("percent_branches_covered", 0.0), 2),
        "pytest": (tests.stdout.strip().splitlines() or [""])[-1],
        "test_files": len(list((project / "tests").rglob("test_*.py"))),
    }


def run_coverup(project: Path, coverup: Path, fake: FakeLLM, args, tiktoken: Path) -> dict:
    env = dict(os.environ)
    for name in ("COVSWEEP_LLM_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_BASE"):
        env.pop(name, None)
    env |= {
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": API_KEY,
        "TIKTOKEN_CACHE_DIR": str(tiktoken),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download attempts of the price list
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        str(coverup),
        "--package-dir",
        f"src/{PACKAGE}",
        "--tests-dir",
        "tests",
        "--model",
        "openai/gpt-4o",
        "--max-concurrency",
        str(args.concurrency),
        "--no-checkpoint",
        "--log-file",
        str(project.parent / "coverup-log"),
    ]
    requests_before = len(fake.requests)
    result = run_streamed(command, cwd=project, env=env, timeout=args.timeout, echo=args.verbose)
    return {
        "command": " ".join(command[1:]),
        "seconds": round(result["seconds"], 3),
        "exit_code": result["exit_code"],
        "timed_out": result["timed_out"],
        "modules_per_minute": round(60.0 * args.modules / result["seconds"], 2),
        "llm_requests": len(fake.requests) - requests_before,
        "output_tail": [line for _, line in result["lines"][-15:]],
    }


def prefect_home(scratch: Path) -> Path:
    """The one Prefect home of the warm-up and the timed covsweep run."""
    home = scratch / "prefect-home"
    home.mkdir(exist_ok=True)
    return home


def warm_up(args, scratch: Path) -> dict | None:
    """An untimed coverage-only run of one module: the Prefect home's database exists afterwards."""
    if args.no_warmup:
        return None
    options = argparse.Namespace(sandbox="docker", covsweep_arg=[], timeout=args.timeout, verbose=args.verbose)
    project = generate(scratch / "warmup", 1)
    run = run_coverage_only(project, scratch / "warmup-report.json", options, prefect_home(scratch))
    print(f"  warm-up (1 module, --generator none, untimed): {run['seconds']:.1f}s, exit {run['exit_code']}")
    return {"seconds": run["seconds"], "exit_code": run["exit_code"]}


def run_covsweep(project: Path, fake: FakeLLM, args, scratch: Path) -> dict:
    home = prefect_home(scratch)
    options = argparse.Namespace(
        max_iterations=1, coverage_target=100.0, sandbox="docker", mutation=args.mutation, verbose=args.verbose
    )
    requests_before = len(fake.requests)
    with HostSampler() as sampler:
        run = run_one(args.concurrency, project, fake, options, home, sampler, args.timeout, args.delay)
    return {
        "command": run["command"],
        "seconds": run["seconds"],
        "exit_code": run["exit_code"],
        "modules_per_minute": round(60.0 * args.modules / run["seconds"], 2),
        "modules_per_minute_module_phase": run["modules_per_minute"],
        "llm_requests": len(fake.requests) - requests_before,
        "phases_s": run["phases_s"],
    }


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=16, help="modules in the generated project [16]")
    parser.add_argument("--concurrency", type=int, default=4, help="both tools' concurrency [4]")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the server waits before each answer [2]")
    parser.add_argument("--timeout", type=float, default=600.0, help="each run is stopped after this long [600]")
    parser.add_argument(
        "--mutation",
        choices=["on", "off"],
        default="on",
        help="covsweep's --mutation; off: coverage alone, the work CoverUp does [on]",
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="time covsweep's first run in a Prefect home without a database"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes [bench/results]")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo both tools' output")
    return parser.parse_args(argv)


def _compare(covsweep: dict, coverup: dict) -> dict:
    return {
        "modules_per_minute_ratio": round(covsweep["modules_per_minute"] / coverup["modules_per_minute"], 2),
        "target_ratio": 2.0,
        "line_covsweep_minus_coverup": round(covsweep["final"]["line"] - coverup["final"]["line"], 2),
        "branch_covsweep_minus_coverup": round(covsweep["final"]["branch"] - coverup["final"]["branch"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    stamp, info, started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), machine(), time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="covsweep-bench-coverup-"))
    fake = FakeLLM()
    try:
        coverup = coverup_venv(timeout=900)
        reply = Reply(
            body=PathAnswering(answers(generate(scratch / "answers", args.modules))),
            headers={"Content-Type": "application/json"},
            delay_s=args.delay,
        )
        fake.script(*[reply] * (args.modules * 40))
        results, warmup = {}, warm_up(args, scratch)
        for name in ("covsweep", "coverup"):
            project = generate(scratch / name, args.modules)
            if name == "covsweep":
                results[name] = run_covsweep(project, fake, args, scratch)
            else:
                results[name] = run_coverup(project, coverup, fake, args, tiktoken_cache(scratch))
            results[name]["final"] = final_coverage(project)
            print(f"  {name}: {json.dumps({k: v for k, v in results[name].items() if k != 'output_tail'})}", flush=True)
        result = {
            "schema": SCHEMA,
            "timestamp": stamp,
            "modules": args.modules,
            "concurrency": args.concurrency,
            "server_delay_s": args.delay,
            "covsweep_mutation": args.mutation,
            "covsweep_warmup": warmup,
            "machine": info,
            **results,
            "comparison": _compare(results["covsweep"], results["coverup"]),
            "bench_seconds": round(time.monotonic() - started, 1),
        }
        args.results.mkdir(parents=True, exist_ok=True)
        text = json.dumps(result, indent=2) + "\n"
        (args.results / f"coverup-{stamp}.json").write_text(text)
        (args.results / "coverup-latest.json").write_text(text)
        print(f"comparison: {result['comparison']}  -> {args.results / f'coverup-{stamp}.json'}")
        return 0 if all(results[n]["exit_code"] == 0 for n in results) else 1
    finally:
        fake.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
