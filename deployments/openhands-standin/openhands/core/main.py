"""Stand-in for `python -m openhands.core.main -t TASK` (tests only).

Asks LLM_BASE_URL's chat-completions endpoint once, with the task as the user message, and
writes each fenced code block of the answer as a test file into the SANDBOX_VOLUMES folder:
the first at the /workspace/.../test_*.py path the task names, the others next to it. An answer
containing `STANDIN-SILENT <seconds>` makes it sleep that long without printing anything,
`STANDIN-BUSY <seconds>` print a line every half second that long.
Errors are printed the way LiteLLM prints them inside OpenHands."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

FENCE = re.compile(r"```[\w+.-]*[^\n]*\n(.*?)^```", re.M | re.S)
TASK_PATH = re.compile(r"/workspace/(\S*test_[^/\s]*?\.py)\b")
SILENT = re.compile(r"STANDIN-SILENT (\d+)")
BUSY = re.compile(r"STANDIN-BUSY (\d+)")
# LiteLLM strips its routing prefix before it calls an OpenAI-compatible endpoint.
ROUTING_PREFIXES = ("openai/", "openrouter/", "hosted_vllm/", "lm_studio/")


def say(line: str) -> None:
    print(f"standin: {line}", flush=True)


def ask(task: str) -> str:
    model = os.environ["LLM_MODEL"]
    for prefix in ROUTING_PREFIXES:
        model = model.removeprefix(prefix)
    request = urllib.request.Request(
        os.environ["LLM_BASE_URL"].rstrip("/") + "/chat/completions",
        data=json.dumps({"model": model, "messages": [{"role": "user", "content": task}]}).encode(),
        headers={"Authorization": f"Bearer {os.environ['LLM_API_KEY']}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["choices"][0]["message"]["content"]
    except urllib.error.HTTPError as exc:
        kind = {401: "AuthenticationError", 429: "RateLimitError"}.get(exc.code, "APIError")
        say(f"litellm.{kind}: {kind}: OpenAIException - {exc.read().decode(errors='replace')}")
    except (urllib.error.URLError, OSError) as exc:
        say(f"litellm.APIConnectionError: APIConnectionError: OpenAIException - {exc}")
    sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="openhands.core.main")
    parser.add_argument("-t", "--task", required=True)
    args, _ = parser.parse_known_args()
    # PID 1 ignores SIGTERM unless it handles it: docker stop would wait for its SIGKILL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workspace = Path(os.environ["SANDBOX_VOLUMES"].split(":")[0])
    say(f"task of {len(args.task)} characters, workspace {workspace}")
    say(f"asking {os.environ['LLM_MODEL']}")
    answer = ask(args.task)
    if silent := SILENT.search(answer):
        time.sleep(int(silent.group(1)))
    if busy := BUSY.search(answer):
        for step in range(2 * int(busy.group(1))):
            say(f"working, step {step}")
            time.sleep(0.5)
    named = TASK_PATH.search(args.task)
    first = workspace / (named.group(1) if named else "tests/test_standin.py")
    blocks = FENCE.findall(answer)
    for n, code in enumerate(blocks, 1):
        path = first if n == 1 else first.with_name(f"{first.stem}_{n}.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
        say(f"wrote {path.relative_to(workspace)}")
    say(f"finished: {len(blocks)} file(s)")


if __name__ == "__main__":
    main()
