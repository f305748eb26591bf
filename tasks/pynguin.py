"""The offline generator: Pynguin, in the sandbox, bounded in time."""

from __future__ import annotations

import shlex
from pathlib import Path

from pydantic import BaseModel

from tasks import sandbox
from tasks.pytest_support import sandbox_env
from tasks.models import Module, ModuleError, Project, SandboxConfig

STARTUP_ALLOWANCE_S = 60


class Generated(BaseModel):
    file: Path
    start_s: float
    duration_s: float


def generate_with_pynguin(config: SandboxConfig, project: Project, module: Module, workspace: Path,
                          *, seed: int, search_s: int, timeout: float) -> Generated:
    """One Pynguin run; its test file comes back as workspace/test_covsweep_<seed>.py."""
    out = workspace / f"pynguin-{seed}"
    mutation_s = max(5, search_s // 2)
    args = [
        "--project-path", str(project.import_root), "--module-name", module.dotted,
        "--output-path", str(out), "--report-dir", str(out / "report"),
        "--maximum-search-time", str(search_s), "--maximum-mutation-time", str(mutation_s),
        "--seed", str(seed),
    ]
    script = (f"cd {shlex.quote(str(workspace))} && PYNGUIN_DANGER_AWARE=1 \"$PYNGUIN\" "
              + " ".join(shlex.quote(a) for a in args) + f" > {out}.log 2>&1; echo \"pynguin exit $?\"")
    budget = min(timeout, search_s + mutation_s + STARTUP_ALLOWANCE_S)
    result = sandbox.run(config, script, workspace=workspace, read_only=[project.target],
                         timeout=budget, env=sandbox_env(project))
    produced = sorted(out.glob("test_*.py"))
    if not produced:
        log = Path(f"{out}.log")
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        if result.timed_out:
            raise ModuleError("timeout", f"Pynguin produced no tests within {budget:.0f}s")
        if result.oom_killed:
            raise ModuleError("sandbox", "Pynguin was killed at the sandbox's memory limit")
        raise ModuleError("internal", f"Pynguin produced no tests: {(tail or [result.output.strip()[-300:]])[0][:300]}")
    candidate = workspace / f"test_covsweep_{seed}.py"
    candidate.write_text(produced[0].read_text())
    return Generated(file=candidate, start_s=result.start_s, duration_s=result.duration_s)
