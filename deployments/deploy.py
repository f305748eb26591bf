"""`make deploy`: work pools, priority queues, blocks and variables, then every deployment of prefect.yaml.

Runs against the current PREFECT_API_URL; running it again changes nothing that is already there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from covsweep.api import NoServer, connect
from covsweep.provision import provision
from tasks.core.errors import InputError
from tasks.core.settings import REPO_ROOT, load

PREFECT_YAML = REPO_ROOT / "prefect.yaml"


def deploy_all() -> int:
    """`prefect deploy --all` from the repository root: process workers load the flows from there."""
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect), "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML)]
    return subprocess.run(command, cwd=REPO_ROOT).returncode


def main() -> int:
    try:
        with connect() as client:
            provision(client, load(), say=lambda line: print(line, flush=True))
    except (NoServer, InputError) as exc:
        print(f"deploy: error: {exc}", file=sys.stderr)
        return 2
    return deploy_all()


if __name__ == "__main__":
    sys.exit(main())
