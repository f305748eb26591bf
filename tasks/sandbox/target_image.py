"""A target's declared dependencies as a layer on the sandbox image, built with no network from a
host-side wheelhouse and tagged by a hash of the sandbox image and the requirements.

A setup.py whose setup() call is not literal is read by the PEP 517 metadata hook, run in the
sandbox (never on the host: it executes the target's code), with the build environment's setuptools."""

from __future__ import annotations

import hashlib
import json
import shlex
import tempfile
from pathlib import Path

from docker.errors import APIError, BuildError
from pydantic import BaseModel

from tasks.core.errors import InputError, ModuleError
from tasks.core.log import get_logger
from tasks.core.models import SandboxConfig
from tasks.core.settings import REPO_ROOT, Settings
from tasks.sandbox import runner as sandbox
from tasks.sandbox.containers import docker_client
from tasks.sandbox.images import RECIPE as SANDBOX_RECIPE
from tasks.sandbox.images import (
    SANDBOX_PYTHON,
    build_failure,
    build_image,
    ensure_sandbox_image,
    existing_sandbox_image,
    fill_wheelhouse,
    image_exists,
)
from tasks.sandbox.nofollow import remove_tree
from tasks.sandbox.requirements import Declared, read_declared
from tasks.sandbox.setup_py import NotStatic, SetupDeclarations, metadata_declarations

RECIPE = REPO_ROOT / "deployments" / "target"
# The runner's own pins: a target may not move coverage or pytest out of what covsweep reads.
CONSTRAINTS = SANDBOX_RECIPE / "runner.txt"
BUILD_PYTHON = "/opt/build/bin/python"
HOOK_TIMEOUT_S = 120
# Run in the target's folder (read-only: the legacy backend writes its egg-info next to the metadata
# it is asked for). tests_require is not part of a wheel's metadata: it is taken from the call.
METADATA_HOOK = """
import json, os, sys, tempfile
from email.parser import Parser
import setuptools
from setuptools import build_meta

report = sys.argv[1]  # the backend replaces sys.argv
tests_require = []
real_setup = setuptools.setup

def recording_setup(*args, **kwargs):
    value = kwargs.get("tests_require") or []
    tests_require.extend(value.splitlines() if isinstance(value, str) else map(str, value))
    return real_setup(*args, **kwargs)

setuptools.setup = recording_setup
out = tempfile.mkdtemp()
name = build_meta.__legacy__.prepare_metadata_for_build_wheel(out)
with open(os.path.join(out, name, "METADATA"), encoding="utf-8") as file:
    metadata = Parser().parse(file)
with open(report, "w", encoding="utf-8") as file:
    json.dump({
        "name": metadata["Name"],
        "requires_dist": metadata.get_all("Requires-Dist") or [],
        "tests_require": [r.split("#")[0].strip() for r in tests_require if r.split("#")[0].strip()],
    }, file)
"""


class TargetImage(BaseModel):
    tag: str
    warnings: list[str] = []


def target_tag(sandbox_id: str, requirements: list[str]) -> str:
    """Keyed by the sandbox's image id, not its tag: a rebuilt COVSWEEP_SANDBOX_IMAGE rebuilds the layer too."""
    digest = hashlib.sha256(sandbox_id.encode())
    for part in [
        (RECIPE / "Dockerfile").read_bytes(),
        CONSTRAINTS.read_bytes(),
        " ".join(SANDBOX_PYTHON).encode(),
        *(r.encode() for r in sorted(set(requirements))),
    ]:
        digest.update(part + b"\0")
    return f"covsweep-target:{digest.hexdigest()[:12]}"


def setup_py_metadata(config: SandboxConfig, project_dir: Path, workdir: Path) -> SetupDeclarations:
    """What setup.py declares, by the PEP 517 metadata hook in the sandbox (no network); raises
    NotStatic with the hook's own last line when it fails (a build requirement that is missing, ...)."""
    workspace = sandbox.prepare_workspace(workdir)
    out = workspace / "metadata.json"
    script = (
        f"cd {shlex.quote(str(project_dir))} && {BUILD_PYTHON} -c {shlex.quote(METADATA_HOOK)} "
        f"{shlex.quote(str(out))} 2>&1"
    )
    result = sandbox.run(config, script, workspace=workspace, read_only=[project_dir], timeout=HOOK_TIMEOUT_S)
    if result.timed_out:
        raise NotStatic(f"the metadata hook did not finish within {HOOK_TIMEOUT_S}s")
    if not result.ok or not out.is_file():
        last = (result.output.strip().splitlines() or [f"exit status {result.exit_code}"])[-1]
        raise NotStatic(f"the metadata hook failed: {last.strip()[:300]}")
    found = json.loads(out.read_text())
    return metadata_declarations(found["name"], found["requires_dist"], found["tests_require"])


def _declared(settings: Settings, sandbox_image: str, project_dir: Path) -> tuple[Declared, list[str]]:
    declared = read_declared(project_dir)
    if not declared.setup_py_unread:
        return declared, []
    hooks = settings.cache_dir / "setup-py"
    hooks.mkdir(parents=True, exist_ok=True)
    # Not TemporaryDirectory: the target's setup.py writes there, and its cleanup recurses per level.
    workdir = Path(tempfile.mkdtemp(dir=hooks))
    try:
        hooked = setup_py_metadata(SandboxConfig(kind="docker", image=sandbox_image), project_dir, workdir)
        return read_declared(project_dir, hooked), []
    except (NotStatic, ModuleError) as exc:
        warning = (
            f"the dependencies declared in {project_dir / 'setup.py'} could not be read ({declared.setup_py_unread}; "
            f"{exc}): they are not installed in the sandbox, and modules that import them will fail"
        )
    finally:
        remove_tree(workdir)
    get_logger("covsweep").warning(warning)
    return declared, [warning]


def ensure_target_image(settings: Settings, project_dir: Path) -> str:
    """The sandbox image with the target's declared dependencies installed; the plain sandbox image
    when it declares none. Built only when missing; raises InputError naming what cannot be installed."""
    return prepare_target_image(settings, project_dir).tag


def existing_target_image(settings: Settings, project_dir: Path) -> str | None:
    """The image ensure_target_image gives, if it is there already and the target declares its dependencies
    where they can be read without a sandbox (not only in setup.py): nothing is built or run."""
    sandbox_image = existing_sandbox_image(settings)
    declared = read_declared(project_dir)
    if sandbox_image is None or declared.setup_py_unread:
        return None
    if not declared.requirements:
        return sandbox_image
    client = docker_client()
    tag = target_tag(client.images.get(sandbox_image).id, declared.requirements)
    return tag if image_exists(client, tag) else None


def prepare_target_image(settings: Settings, project_dir: Path) -> TargetImage:
    """ensure_target_image, with the warnings for the run's report (a setup.py that could not be read)."""
    sandbox_image = ensure_sandbox_image(settings)
    declared, warnings = _declared(settings, sandbox_image, project_dir)
    if not declared.requirements:
        return TargetImage(tag=sandbox_image, warnings=warnings)
    client = docker_client()
    tag = target_tag(client.images.get(sandbox_image).id, declared.requirements)
    if not image_exists(client, tag):
        _build(client, settings, tag, sandbox_image, project_dir, declared.requirements)
    return TargetImage(tag=tag, warnings=warnings)


def _build(client, settings: Settings, tag: str, sandbox_image: str, project_dir: Path, requirements: list[str]):
    what = f"the dependencies of {project_dir} cannot be installed"
    workdirs = settings.cache_dir / "wheelhouse-targets"
    workdirs.mkdir(parents=True, exist_ok=True)
    # A folder per build: two runs of one target at once never share a half-filled wheelhouse.
    with tempfile.TemporaryDirectory(dir=workdirs, prefix=tag.split(":", 1)[1] + "-") as workdir:
        listed, wheelhouse = Path(workdir) / "requirements.txt", Path(workdir) / "wheels"
        listed.write_text("\n".join(requirements) + "\n")
        fill_wheelhouse(wheelhouse, [listed], constraints=[CONSTRAINTS], what=what, build_sdists=True)
        files = {"Dockerfile": RECIPE / "Dockerfile", "requirements.txt": listed, "constraints.txt": CONSTRAINTS}
        try:
            build_image(client, tag, files, wheelhouse, {"SANDBOX": sandbox_image})
        except (BuildError, APIError) as exc:
            raise InputError(f"{what}: {build_failure(exc)}") from None
