"""What the sandbox's user costs on this host: the same commands in covsweep's Docker sandbox (its flags, its
image, a generated project) as the sandbox's non-root user and, for comparison only, as root. On a Docker
whose storage driver is fuse-overlayfs, a non-root process pays for every path looked up from `/`; this
measures how much of a sandboxed run that is. covsweep itself never runs the sandbox as root.

    .venv/bin/python bench/sandbox_user.py [--modules 400] [--repeat 3]

writes bench/results/sandbox-user-<time>.json."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from synth import generate  # noqa: E402

from tasks.core.models import SandboxConfig  # noqa: E402
from tasks.core.settings import load  # noqa: E402
from tasks.coverage.data import write_rcfile  # noqa: E402
from tasks.project.discover import discover  # noqa: E402
from tasks.sandbox import runner as sandbox  # noqa: E402
from tasks.sandbox.containers import docker_client  # noqa: E402
from tasks.sandbox.images import ensure_sandbox_image  # noqa: E402
from tasks.sandbox.pytest_support import sandbox_env  # noqa: E402

LOOKUPS = """
import os, sys, time
def per_lookup(path):
    started = time.perf_counter()
    for _ in range(5000):
        os.stat(path)
    return (time.perf_counter() - started) / 5000 * 1e6
print(round(per_lookup(sys.argv[1]), 2), round(per_lookup(sys.argv[2]), 2))
"""

# Each step's command, run from the target's root: {per_test} is the rcfile of a module's filter run, of
# one test file ({first_test}); {whole} the baseline's, of the whole suite.
STEPS = {
    "python_start_s": '"$PY" -c pass',
    "import_pytest_s": '"$PY" -c "import pytest"',
    "one_test_file_per_test_contexts_s": '"$PY" -m coverage run --rcfile={per_test} -m pytest -q -p no:cacheprovider {first_test}',
    "whole_suite_under_coverage_s": '"$PY" -m coverage run --rcfile={whole} -m pytest -q -p no:cacheprovider tests',
}


def _script(project, workspace: Path) -> str:
    """Each step timed in milliseconds, then the microseconds of one lookup from `/` and of one from here."""
    first_test = sorted((project.target / "tests").glob("test_*.py"))[0].relative_to(project.target)
    rcfiles = {
        kind: write_rcfile(sandbox.prepare_workspace(workspace / kind), project, per_test=kind == "per_test")
        for kind in ("per_test", "whole")
    }
    lines = [f"cd {project.target}"]
    for command in STEPS.values():
        step = command.format(first_test=first_test, **rcfiles)
        lines.append(
            f"t0=$(date +%s%N); {step} > {workspace}/log 2>&1; status=$?;"
            f' echo "ms $(( ($(date +%s%N) - t0) / 1000000 )) $status"'
        )
    lines.append(f"\"$PY\" -c '{LOOKUPS}' {project.import_root} {project.import_root.relative_to(project.target)}")
    return "\n".join(lines)


def measured(config: SandboxConfig, project, root: Path, uid: int) -> dict[str, float]:
    sandbox.CONTAINER_UID = uid  # the one flag this benchmark changes
    workspace = sandbox.prepare_workspace(Path(tempfile.mkdtemp(dir=root)))
    script = _script(project, workspace)
    env = sandbox_env(project)  # as every sandboxed run of the project has it
    result = sandbox.run(config, script, workspace=workspace, read_only=[project.target], timeout=900, env=env)
    lines = result.output.split("\n")
    timed = [line.split()[1:] for line in lines if line.startswith("ms ")]
    failed = [step for step, (_, status) in zip(STEPS, timed, strict=True) if status != "0"]
    assert not failed, f"{failed} failed as uid {uid}: {result.output[-2000:]}"
    seconds = [int(ms) / 1000 for ms, _ in timed]
    absolute_us, relative_us = (float(v) for v in [line for line in lines if line.strip()][-1].split())
    return dict(zip(STEPS, seconds, strict=True)) | {
        "lookup_from_root_us": absolute_us,
        "lookup_from_cwd_us": relative_us,
    }


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modules", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = SandboxConfig(kind="docker", image=ensure_sandbox_image(load()))
    root = Path(tempfile.mkdtemp(prefix="covsweep-bench-", dir="/var/tmp"))
    users = {"sandbox_user": sandbox.CONTAINER_UID, "root_for_comparison": 0}
    try:
        project = discover(generate(root / "project", args.modules))
        for folder, _, _ in os.walk(root):
            os.chmod(folder, 0o755)  # the sandbox's uid reads the project
        runs = {name: [] for name in users}
        for _ in range(args.repeat):
            for name, uid in users.items():  # alternating, so that a drift of the host touches both
                runs[name].append(measured(config, project, root, uid))
    finally:
        sandbox.CONTAINER_UID = users["sandbox_user"]
        shutil.rmtree(root, ignore_errors=True)
    medians = {name: _medians(samples) for name, samples in runs.items()}
    result = {
        "modules": args.modules,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "storage_driver": docker_client().info().get("Driver"),
        "runs": runs,
        "medians": medians,
        "sandbox_user_over_root": {
            key: round(medians["sandbox_user"][key] / medians["root_for_comparison"][key], 2) for key in STEPS
        },
    }
    out = HERE / "results" / f"sandbox-user-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps({k: result[k] for k in ("modules", "storage_driver", "medians", "sandbox_user_over_root")}, indent=2)
    )


if __name__ == "__main__":
    main()
