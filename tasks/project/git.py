"""Running git: credentials through the environment only, and nothing it prints shown unscrubbed."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tasks.core.log import get_logger
from tasks.project.remote import Remote, scrub

DEFAULT_TIMEOUT_S = 600.0
HELPER_USERNAME = "COVSWEEP_GIT_HELPER_USERNAME"
HELPER_PASSWORD = "COVSWEEP_GIT_HELPER_PASSWORD"
# Run by git through its shell with the argument `get`, `store` or `erase`: the values are expanded inside
# that shell, so they are on no command line, and it answers `get` only, so nothing is ever stored.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || return 0; '
    f'printf "username=%s\\npassword=%s\\n" "${HELPER_USERNAME}" "${HELPER_PASSWORD}"; }}; f'
)
# Secrets of covsweep's own that git and what it starts (hooks, helpers) have no business seeing.
WITHHELD_VARIABLES = ("COVSWEEP_GIT_TOKEN", "COVSWEEP_LLM_API_KEY", "OPENROUTER_API_KEY")


class GitError(Exception):
    """A git command failed; `output` is what git printed, already scrubbed of every credential."""

    def __init__(self, command: str, output: str):
        self.command = command
        self.output = output
        super().__init__(f"git {command} failed: {explanation(output)}")


def explanation(output: str) -> str:
    """The one line of git's output that says what went wrong."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    for prefix in ("fatal:", "error:"):
        at = next((i for i, line in enumerate(lines) if line.startswith(prefix)), None)
        if at is not None:
            found = lines[at].removeprefix(prefix).strip()
            # `unable to connect to host:` and the like: the reason is on the next line.
            return f"{found} {lines[at + 1]}" if found.endswith(":") and at + 1 < len(lines) else found
    return lines[-1] if lines else "no output"


def environment(remote: Remote | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """git's environment: messages in English (errors are recognised by them), no prompt that would wait
    forever on a worker, and a token, when there is one, as the only credential git may use."""
    env = {name: value for name, value in os.environ.items() if name not in WITHHELD_VARIABLES}
    env |= {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(extra or {})}
    if remote is not None and remote.credentials is not None:
        count = int(env.get("GIT_CONFIG_COUNT") or 0)
        env |= {
            # An empty helper first empties the list: this host's helpers neither answer nor store the token.
            f"GIT_CONFIG_KEY_{count}": "credential.helper",
            f"GIT_CONFIG_VALUE_{count}": "",
            f"GIT_CONFIG_KEY_{count + 1}": "credential.helper",
            f"GIT_CONFIG_VALUE_{count + 1}": CREDENTIAL_HELPER,
            "GIT_CONFIG_COUNT": str(count + 2),
            HELPER_USERNAME: remote.credentials.username,
            HELPER_PASSWORD: remote.credentials.password.get_secret_value(),
        }
    return env


def git(
    *args: str,
    cwd: Path | None = None,
    remote: Remote | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> str:
    """git's standard output; GitError (scrubbed) when it fails or takes longer than `timeout`."""
    secrets = remote.secrets() if remote is not None else []
    command = next((a for a in args if not a.startswith("-")), "")
    proc = subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        env=environment(remote, env),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a timeout kills git's helpers (remote-https, ssh) with it
    )
    try:
        out, err = proc.communicate(input.encode() if input is not None else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise GitError(command, f"fatal: no answer within {timeout:.0f}s") from None
    printed = scrub(err.decode(errors="replace"), secrets)
    if proc.returncode != 0:
        raise GitError(command, printed or scrub(out.decode(errors="replace"), secrets))
    if printed.strip():
        get_logger("covsweep.git").debug("git %s: %s", command, printed.strip())
    return out.decode(errors="replace")
