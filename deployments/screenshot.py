"""A PNG of a flow run's page in the Prefect UI, taken with headless Chromium: what README shows.

    .venv/bin/python deployments/screenshot.py RUN_ID docs/ui-flow-run.png
    .venv/bin/python deployments/screenshot.py RUN_ID docs/ui-artifacts.png --tab Artifacts

The UI is the one serving PREFECT_API_URL (without its /api), else `make server`'s on
http://127.0.0.1:4200; `--ui URL` names another. Prefect 3.8 serves two UIs: V2 under /v2, which a
browser without a saved choice is sent to, and V1 at the old paths (/runs/flow-run/ID), which drops a
?tab= it is opened with. The browser is Debian's `chromium` package."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from uuid import UUID

from covsweep.api import api_url
from tasks.core.settings import load

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TABS = ("Logs", "TaskRuns", "SubflowRuns", "Artifacts", "Parameters", "JobVariables")  # the run page's tabs


class Refused(Exception):
    """Nothing to take a picture with or of: one line on stderr, exit status 2."""


def default_ui() -> str:
    api = api_url() or f"http://127.0.0.1:{load().prefect_port}/api"
    return api.rstrip("/").removesuffix("/api")


def run_page(ui: str, run_id: str, tab: str | None, version: str = "v2") -> str:
    prefix = "/v2" if version == "v2" else ""
    return f"{ui.rstrip('/')}{prefix}/runs/flow-run/{run_id}" + (f"?tab={tab}" if tab else "")


def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        raise Refused("no Chromium found: `apt-get install chromium`")
    return found


def screenshot(url: str, out: Path, width: int, height: int, wait_s: float) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="covsweep-chromium-") as profile:
        command = [
            browser(),
            "--headless=new",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",  # a throwaway profile: no saved UI preference, nothing left behind
            f"--window-size={width},{height}",
            # Virtual time runs on while the page is idle, not while it fetches: the single-page app
            # gets its API answers and renders before the picture is taken.
            f"--virtual-time-budget={int(wait_s * 1000)}",
            f"--screenshot={out}",
            url,
        ]
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium's own sandbox refuses to start as root
        done = subprocess.run(command, capture_output=True, text=True, timeout=wait_s + 120)
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        raise Refused(f"chromium took no screenshot of {url}: " + re.sub(r"^\[[^\]]*\]\s*", "", last)[:300])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Save a PNG of a flow run's page in the Prefect UI.")
    parser.add_argument("run_id", help="the flow run id, as `covsweep submit` prints it")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--tab", choices=TABS, help="a tab of the run page instead of its first one")
    parser.add_argument("--ui", default=default_ui(), help="the UI's address [%(default)s]")
    parser.add_argument("--ui-version", choices=("v2", "v1"), default="v2", help="which of Prefect's UIs [v2]")
    parser.add_argument("--size", default="1280x900", help="window width x height [%(default)s]")
    parser.add_argument("--wait", type=float, default=20.0, help="seconds of page time before the picture [20]")
    args = parser.parse_args(argv)
    try:
        UUID(args.run_id)
    except ValueError:
        parser.error(f"{args.run_id!r} is not a flow run id (a UUID, as `covsweep submit` prints)")
    try:
        width, height = (int(n) for n in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r}: WIDTHxHEIGHT, e.g. 1280x900")
    url = run_page(args.ui, args.run_id, args.tab, args.ui_version)
    try:
        print(screenshot(url, args.out, width, height, args.wait))
    except Refused as exc:
        print(f"screenshot: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
