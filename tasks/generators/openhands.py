"""The OpenHands generator: one OpenHands run in headless Docker mode per round, on a scratch
copy of the target; the test files it leaves there come back as one candidate file.

Unlike the sandbox, this container gets the LLM key, the network and the Docker socket (OpenHands
starts its own runtime container): see the README's OpenHands section."""

from __future__ import annotations

import collections
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

import httpx
import requests
from docker.errors import APIError, DockerException
from pydantic import BaseModel, SecretStr

from tasks.core.errors import InputError, ModuleError
from tasks.core.log import get_logger
from tasks.core.models import FileCoverage, Module, Mutant, ProjectRef
from tasks.core.settings import Settings
from tasks.core.testfiles import is_test_file, test_names
from tasks.coverage.diff import missed_changed_lines
from tasks.coverage.testfile import TestFileBuilder
from tasks.generators.pynguin import Generated
from tasks.llm.config import LLMConfig
from tasks.llm.prompts import describe_missing, missing, surviving_mutants
from tasks.sandbox.containers import covsweep_container, docker_client, gone
from tasks.sandbox.images import image_exists
from tasks.sandbox.nofollow import remove_tree
from tasks.sandbox.runner import prepare_workspace
from tasks.sandbox.snapshot import project_files

# Beside covsweep's own labels (tasks/sandbox/containers.py): the run's scratch folder, to tell runs apart.
SCRATCH_LABEL = "covsweep.openhands"
DOCKER_SOCKET = Path("/var/run/docker.sock")
POLL_S = 0.5
STOP_GRACE_S = 10  # SIGTERM first: OpenHands then removes the runtime container it started
TAIL_LINES = 200
MAX_LINE_CHARS = 2000
MAX_FAILURE_CHARS = 2000
MAX_COPY_BYTES = 200 * 2**20
FILTER_SHARE = 0.25  # of the round's time, kept for filtering what OpenHands wrote
# LiteLLM routes a model on its first segment; these name an OpenAI-compatible server already.
OPENAI_COMPATIBLE = {"openai", "hosted_vllm", "lm_studio", "ollama", "ollama_chat", "litellm_proxy", "openrouter"}
# How LiteLLM, inside OpenHands, prints the errors the report has a type for.
LITELLM_ERRORS = {
    "litellm.AuthenticationError": "authentication",
    "litellm.RateLimitError": "rate_limit",
    "litellm.APIConnectionError": "connection",
    "litellm.Timeout": "timeout",
}


def litellm_model(model: str, base_url: str) -> str:
    """`model` with the provider prefix LiteLLM needs: `openrouter/` on OpenRouter, else `openai/`
    (covsweep's endpoints are OpenAI-compatible) unless it names such a provider already."""
    host = httpx.URL(base_url).host
    if host == "openrouter.ai" or host.endswith(".openrouter.ai"):
        # OpenRouter's names are vendor/model, and vendors share names with providers (deepseek/, mistral/).
        return model if model.startswith("openrouter/") else f"openrouter/{model}"
    provider = model.split("/", 1)[0] if "/" in model else ""
    return model if provider in OPENAI_COMPATIBLE else f"openai/{model}"


class OpenHandsSetup(BaseModel):
    """Everything one OpenHands run needs besides the module; the key is masked in repr and JSON."""

    image: str
    runtime_image: str
    model: str
    base_url: str
    api_key: SecretStr
    network: str = "bridge"
    timeout_s: float = 900.0
    idle_s: float = 180.0

    @classmethod
    def resolve(cls, settings: Settings, llm: LLMConfig) -> OpenHandsSetup:
        if not llm.has_key:
            raise ModuleError("authentication", "OpenHands needs an LLM API key: set COVSWEEP_LLM_API_KEY")
        return cls(
            image=settings.openhands_image,
            runtime_image=settings.openhands_runtime_image,
            model=litellm_model(settings.openhands_model or llm.models[0], llm.base_url),
            base_url=llm.base_url,
            api_key=llm.api_key,
            network=settings.openhands_network,
            timeout_s=settings.openhands_timeout,
            idle_s=settings.openhands_idle_timeout,
        )


# -- the scratch copy -----------------------------------------------------------------------------


def copy_target(target: Path, copy: Path) -> None:
    """The target's files into `copy`, every folder writable: OpenHands' user need not be ours."""
    files = project_files(target)
    size = sum(p.lstat().st_size for p in files)
    if size > MAX_COPY_BYTES:
        raise ModuleError("target", f"the project is {size // 2**20} MB: too large to copy for OpenHands")
    for path in files:
        dest = copy / path.relative_to(target)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            os.symlink(os.readlink(path), dest)  # as a link: nothing from outside the target is copied in
        else:
            shutil.copy2(path, dest)
    for dirpath, _, _ in os.walk(prepare_workspace(copy)):
        prepare_workspace(Path(dirpath))


def _names(source: str | None) -> set[str]:
    try:
        return set(test_names(source)) if source else set()
    except (SyntaxError, ValueError):
        return set()


def collect_tests(copy: Path, target: Path) -> list[tuple[str, set[str]]]:
    """Test files OpenHands wrote or changed in the copy, each with the tests that are new in it."""
    found = []
    for path in project_files(copy):
        if path.suffix != ".py" or not is_test_file(path.name) or path.is_symlink():
            continue
        source = path.read_text(errors="replace")
        original = target / path.relative_to(copy)
        before = original.read_text(errors="replace") if original.is_file() else None
        if source != before and (names := _names(source) - _names(before)):
            found.append((source, names))
    return found


def test_file_for(project: ProjectRef, module: Module) -> str:
    """Where, relative to the target, OpenHands is asked to write the module's tests."""
    tests = next((p for p in project.test_paths if p.is_dir() and p.is_relative_to(project.target)), None)
    folder = tests.relative_to(project.target).as_posix() if tests else "tests"
    return f"{folder}/test_covsweep_{module.path.removesuffix('.py').replace('/', '_')}.py"


def task_text(
    project: ProjectRef,
    module: Module,
    coverage: FileCoverage,
    test_file: str,
    *,
    failures: str = "",
    kept: list[str] | None = None,
    survivors: list[Mutant] | None = None,
    changed_lines: list[int] | None = None,
) -> str:
    source = module.file.relative_to(project.target).as_posix()
    root = project.import_root.relative_to(project.target).as_posix()
    pythonpath = "/workspace" if root == "." else f"/workspace/{root}"
    parts = [
        f"/workspace is a copy of a Python project. Write pytest tests for the module /workspace/{source}, "
        f"imported as `{module.dotted}`. The project's tests do not execute "
        f"{describe_missing(*missing(coverage))} of it yet: write tests that do.",
        f"Put every test in one new file, /workspace/{test_file}, and change no other file. The tests must "
        "pass under plain pytest on every run: no network, no sleeping, no files outside pytest's tmp_path.",
        f"Check them with `cd /workspace && PYTHONPATH={pythonpath} python -m pytest -q {test_file}`, then finish.",
    ]
    if changed := missed_changed_lines(coverage, changed_lines or []):
        parts.insert(
            1, f"The change under review added or modified {describe_missing(changed, [])}: cover those first."
        )
    if kept:
        parts.append(f"These tests exist already, do not repeat them: {', '.join(kept)}.")
    if failures.strip():
        parts.append(
            "Some tests of the previous attempt failed or were not reliable; pytest said:\n"
            + failures.strip()[-MAX_FAILURE_CHARS:]
        )
    if mutants := surviving_mutants(survivors or []):
        parts.append(mutants)
    return "\n\n".join(parts)


# -- the container --------------------------------------------------------------------------------


class _Output:
    """The container's output as it arrives: its last lines, the key redacted, and when it last came."""

    def __init__(self, secret: str):
        self.secret = secret
        self.lines: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.last = time.monotonic()
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        self.last = time.monotonic()
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        for raw in complete:
            self._add(raw)
        if len(self._partial) > 65536:
            self._add(self._partial)
            self._partial = b""

    def _add(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        if self.secret:
            line = line.replace(self.secret, "***")
        self.lines.append(line[:MAX_LINE_CHARS])

    def text(self) -> str:
        if self._partial:
            self._add(self._partial)
            self._partial = b""
        return "\n".join(self.lines)


def _follow(container, output: _Output) -> None:
    try:
        for chunk in container.logs(stream=True, follow=True):
            output.feed(chunk)
    except (DockerException, requests.RequestException, OSError):
        pass  # the stream breaks when the container is stopped


class ContainerRun(BaseModel):
    exit_code: int | None
    output: str
    killed: str | None = None  # "timeout": past the wall clock; "stuck": silent too long
    start_s: float = 0.0
    duration_s: float = 0.0


def _stop(container) -> None:
    try:
        container.stop(timeout=STOP_GRACE_S)
    except (APIError, requests.RequestException):
        pass  # it ended meanwhile; remove(force=True) follows anyway


def run_container(
    setup: OpenHandsSetup, command: list[str], env: dict[str, str], volumes: dict, label: str, timeout: float
) -> ContainerRun:
    """Run until it exits, `timeout` s pass or it prints nothing for `setup.idle_s` s; removed on every
    way out, and ending itself after `timeout` should this process die."""
    try:
        client = docker_client()
    except InputError as exc:
        raise ModuleError("sandbox", str(exc)) from None
    if not image_exists(client, setup.image):
        raise ModuleError(
            "sandbox", f"the OpenHands image {setup.image} (OPENHANDS_IMAGE) is not present: docker pull {setup.image}"
        )
    started = time.monotonic()
    try:
        # Not the sandbox: this container gets the key and the network, which OpenHands needs. SIGTERM
        # first when it ends itself: OpenHands then removes the runtime container it started.
        with covsweep_container(
            client,
            setup.image,
            command,
            kind="openhands",
            budget_s=timeout,
            term_grace_s=STOP_GRACE_S,
            labels={SCRATCH_LABEL: label},
            environment=env,
            volumes=volumes,
            network_mode=setup.network,
            extra_hosts=None if setup.network == "host" else {"host.docker.internal": "host-gateway"},
            name=f"covsweep-openhands-{uuid.uuid4().hex[:12]}",
        ) as container:
            return _watch(container, setup, started, timeout)
    except APIError as exc:
        raise ModuleError("sandbox", f"the OpenHands container failed: {exc.explanation or exc}") from None


def _watch(container, setup: OpenHandsSetup, started: float, timeout: float) -> ContainerRun:
    """Follow the container's output until it exits, or stop it when it runs too long or falls silent."""
    start_s = time.monotonic() - started
    output = _Output(setup.api_key.get_secret_value())
    reader = threading.Thread(target=_follow, args=(container, output), daemon=True, name="openhands-output")
    reader.start()
    killed = None
    while killed is None:
        reader.join(POLL_S)
        if not reader.is_alive():
            break
        now = time.monotonic()
        killed = "timeout" if now - started > timeout else "stuck" if now - output.last > setup.idle_s else None
    exit_code = None
    if not killed:
        try:
            exit_code = container.wait(timeout=60)["StatusCode"]
        except requests.RequestException:
            killed = "timeout"  # its output stream broke off, yet it runs on
        except APIError as exc:
            if not gone(exc):  # else another process removed it: what it wrote is all there is
                raise
    if killed:
        _stop(container)
        reader.join(STOP_GRACE_S)
    return ContainerRun(
        exit_code=exit_code,
        output=output.text(),
        killed=killed,
        start_s=start_s,
        duration_s=time.monotonic() - started,
    )


def failure(run: ContainerRun, setup: OpenHandsSetup, timeout: float) -> ModuleError:
    """Why a run left no test file, as the report's error types say it."""
    if run.killed == "stuck":
        return ModuleError("timeout", f"OpenHands printed nothing for {setup.idle_s:.0f}s: stuck, killed")
    if run.killed:
        return ModuleError("timeout", f"OpenHands did not finish within {timeout:.0f}s: killed")
    lines = [line.strip() for line in run.output.splitlines() if line.strip()]
    for marker, kind in LITELLM_ERRORS.items():
        said = [line for line in lines if marker in line]
        if said:
            return ModuleError(kind, f"OpenHands: {said[-1][:300]}")
    if run.exit_code:
        return ModuleError("sandbox", f"OpenHands exited with status {run.exit_code}: {(lines or [''])[-1][:300]}")
    return ModuleError("invalid_response", "OpenHands finished without writing a test file")


def container_spec(setup: OpenHandsSetup, copy: Path, state: Path) -> tuple[dict[str, str], dict[str, dict]]:
    """The OpenHands container's environment and volumes: the project copy read-write, nothing else of ours."""
    env = {
        "LLM_MODEL": setup.model,
        "LLM_API_KEY": setup.api_key.get_secret_value(),
        "LLM_BASE_URL": setup.base_url,
        "SANDBOX_VOLUMES": f"{copy}:/workspace:rw",
        "SANDBOX_RUNTIME_CONTAINER_IMAGE": setup.runtime_image,
        "SANDBOX_USER_ID": str(os.getuid()),
        "LOG_ALL_EVENTS": "true",
    }
    # The copy at its own path too: what OpenHands' local runtime (and the stand-in) write to.
    volumes = {str(copy): {"bind": str(copy), "mode": "rw"}, str(state): {"bind": "/.openhands", "mode": "rw"}}
    if DOCKER_SOCKET.is_socket():
        volumes[str(DOCKER_SOCKET)] = {"bind": str(DOCKER_SOCKET), "mode": "rw"}
    return env, volumes


def generate_with_openhands(
    setup: OpenHandsSetup,
    project: ProjectRef,
    module: Module,
    coverage: FileCoverage,
    workspace: Path,
    *,
    round_no: int,
    timeout: float,
    failures: str = "",
    kept: list[str] | None = None,
    survivors: list[Mutant] | None = None,
    changed_lines: list[int] | None = None,
) -> Generated:
    """One OpenHands run; the tests it left come back as workspace/test_covsweep_<round_no>.py."""
    scratch = workspace / f"openhands-{round_no}"
    copy, state = scratch / "project", scratch / "state"
    budget = min(setup.timeout_s, timeout * (1 - FILTER_SHARE))
    try:
        copy_target(project.target, copy)
        prepare_workspace(state)
        test_file = test_file_for(project, module)
        task = task_text(
            project,
            module,
            coverage,
            test_file,
            failures=failures,
            kept=kept,
            survivors=survivors,
            changed_lines=changed_lines,
        )
        env, volumes = container_spec(setup, copy, state)
        run = run_container(
            setup, ["python", "-m", "openhands.core.main", "-t", task], env, volumes, str(scratch), budget
        )
        found = [] if run.killed else collect_tests(copy, project.target)
        get_logger("covsweep.openhands").info(
            "%s: OpenHands (%s) %s after %.0fs, %d test file(s)",
            module.path,
            setup.model,
            run.killed or f"exit {run.exit_code}",
            run.duration_s,
            len(found),
        )
        if not found:
            raise failure(run, setup, budget)
        builder = TestFileBuilder()
        for source, names in found:
            builder.add(source, names)
        candidate = workspace / f"test_covsweep_{round_no}.py"
        candidate.write_text(builder.render())
        return Generated(file=candidate, start_s=run.start_s, duration_s=run.duration_s)
    finally:
        remove_tree(scratch)
