"""Import a module once in the sandbox before anything generates tests for it: a module that
cannot be imported, exits, hangs or exhausts its limits is told apart here, with a clear error."""

from __future__ import annotations

import secrets
import shlex
from pathlib import Path

from tasks.core.errors import ModuleError
from tasks.core.models import Module, ProjectRef, SandboxConfig
from tasks.sandbox import runner as sandbox
from tasks.sandbox.pytest_support import sandbox_env

PROBE = """
import importlib, sys, traceback
try:
    importlib.import_module(sys.argv[1])
except SystemExit as exc:
    print(f"calls sys.exit({exc.code!r}) on import"); sys.exit(97)
except BaseException as exc:
    print(f"import fails: {type(exc).__name__}: {exc}"); sys.exit(97)
print(sys.argv[2], flush=True)
"""


def probe_import(config: SandboxConfig, project: ProjectRef, module: Module, workspace: Path, timeout: float) -> float:
    """Raise ModuleError unless the module imports cleanly; returns the sandbox start time."""
    # os._exit() during import ends with status 0: only this token proves the import finished.
    done = f"covsweep-probe-done-{secrets.token_hex(8)}"
    script = (
        f'cd {shlex.quote(str(project.target))} && "$PY" -c {shlex.quote(PROBE)} {shlex.quote(module.dotted)} {done}'
    )
    result = sandbox.run(
        config, script, workspace=workspace, read_only=[project.target], timeout=timeout, env=sandbox_env(project)
    )
    last = (result.output.strip().splitlines() or [""])[-1][:300]
    if result.timed_out:
        raise ModuleError("timeout", f"importing {module.dotted} did not finish within {timeout:.0f}s")
    if result.oom_killed or (config.kind == "local" and result.exit_code in (137, -9)):
        raise ModuleError("sandbox", f"importing {module.dotted} was killed at the sandbox's memory limit")
    if result.exit_code == 97:
        raise ModuleError("target", f"{module.dotted} {last}")
    if result.exit_code != 0:
        raise ModuleError(
            "target", f"importing {module.dotted} ended the interpreter with exit status {result.exit_code}: {last}"
        )
    if done not in result.output:
        raise ModuleError(
            "target", f"importing {module.dotted} ended the interpreter before the import finished (os._exit?): {last}"
        )
    return result.start_s
