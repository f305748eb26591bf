"""ruff format, as a subprocess of the ruff installed with covsweep (a runtime dependency)."""

from __future__ import annotations

import subprocess
import sys

from tasks.core.log import get_logger

FORMAT_TIMEOUT_S = 30


def ruff_format(source: str, line_length: int) -> str:
    """`source` formatted by ruff with the project's line length and ruff's defaults otherwise
    (`--isolated`: no configuration found on the way applies); `source` itself when ruff is missing
    or refuses it: libcst's output is valid Python, only less tidy."""
    command = [sys.executable, "-m", "ruff", "format", "--isolated", f"--line-length={line_length}", "-"]
    try:
        done = subprocess.run(command, input=source, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        get_logger("covsweep").warning("ruff format did not run (%s): the tests are written unformatted", exc)
        return source
    if done.returncode != 0:
        get_logger("covsweep").warning("ruff format failed: %s", done.stderr.strip()[-300:])
        return source
    return done.stdout
