"""The whole-project measurement's two steps in the sandbox, `coverage run` and `coverage json`, with the
data file's names absolute and relative to the target (`relative_files`), on a generated project; and
the report as covsweep writes it (tasks/sandbox/coverage_json.py) from the same data.

    .venv/bin/python bench/relative_files.py --modules 2000 [--repeat 2]

writes bench/results/relative-files-<time>.json. Both settings and both reporters must give the same report."""

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
from tasks.sandbox.images import ensure_sandbox_image  # noqa: E402
from tasks.sandbox.pytest_support import coverage_json_command  # noqa: E402

STEPS = (
    'cd {target} && t0=$(date +%s%N) && "$PY" -m coverage run --rcfile={rc} -m pytest -q -p no:cacheprovider tests'
    ' > {ws}/log 2>&1; t1=$(date +%s%N); "$PY" -m coverage json --rcfile={rc} -q -o {ws}/coverage.json;'
    " t2=$(date +%s%N); {reporter} > {ws}/reporter.log 2>&1; t3=$(date +%s%N);"
    " echo $(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 )) $(( (t3 - t2) / 1000000 ))"
)


def measured(config, project, root: Path, relative: bool) -> tuple[list[float], dict, bool]:
    """Seconds of `coverage run`, `coverage json` and covsweep's reporter; the report's files; whether the
    reporter's whole report is the same (but for its timestamp)."""
    workspace = sandbox.prepare_workspace(Path(tempfile.mkdtemp(dir=root)))
    rcfile = write_rcfile(workspace, project, per_test=False)
    if not relative:
        settings = rcfile.read_text()
        assert "relative_files = True\n" in settings, "write_rcfile no longer sets relative_files as this expects"
        rcfile.write_text(settings.replace("relative_files = True\n", ""))
    reporter = coverage_json_command(workspace, rcfile, workspace / "covsweep.json")
    script = STEPS.format(target=project.target, rc=rcfile, ws=workspace, reporter=reporter)
    result = sandbox.run(config, script, workspace=workspace, read_only=[project.target], timeout=900)
    seconds = [int(ms) / 1000 for ms in result.output.split()[-3:]]
    reports = [json.loads((workspace / name).read_text()) for name in ("coverage.json", "covsweep.json")]
    for report in reports:
        report["meta"].pop("timestamp")
    return seconds, reports[0]["files"], reports[0] == reports[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modules", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    config = SandboxConfig(kind="docker", image=ensure_sandbox_image(load()))
    root = Path(tempfile.mkdtemp(prefix="covsweep-bench-", dir="/var/tmp"))
    root.chmod(0o755)  # the sandbox's uid reads the project
    try:
        project = discover(generate(root / "project", args.modules))
        for folder, _, _ in os.walk(root):
            os.chmod(folder, 0o755)
        times = {"absolute": [], "relative": []}
        reports, same = {}, []
        for _ in range(args.repeat):
            for name in times:
                seconds, reports[name], same_as_ours = measured(config, project, root, name == "relative")
                same.append(same_as_ours)
                steps = ("coverage_run_s", "coverage_json_s", "covsweep_json_s")
                times[name].append(dict(zip(steps, seconds, strict=True)))
        result = {
            "modules": args.modules,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "runs": times,
            "median_json_s": {k: statistics.median(t["coverage_json_s"] for t in v) for k, v in times.items()},
            "median_covsweep_json_s": {k: statistics.median(t["covsweep_json_s"] for t in v) for k, v in times.items()},
            "median_run_s": {k: statistics.median(t["coverage_run_s"] for t in v) for k, v in times.items()},
            "same_report": reports["absolute"] == reports["relative"],
            "same_report_from_covsweep_json": all(same),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = HERE / "results" / f"relative-files-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
