"""The sandbox image: built once from deployments/sandbox, tagged by a hash of its recipe."""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from docker.errors import APIError, BuildError, ImageNotFound
from packaging.utils import parse_wheel_filename

from tasks.core.errors import InputError
from tasks.core.settings import REPO_ROOT, Settings
from tasks.sandbox.containers import docker_client

RECIPE = REPO_ROOT / "deployments" / "sandbox"
RECIPE_FILES = ("Dockerfile", "runner.txt", "pynguin.txt", "build.txt", "offline.txt")
REGISTRY_BASE = "python:3.11-slim"
OFFLINE_BASE = "covsweep-base:bookworm"
SANDBOX_VERSION = (3, 11)
SANDBOX_GLIBC = 36  # bookworm's glibc 2.36: the oldest base the sandbox is built on
# Wheels for the sandbox, not for this host. pip does not widen a manylinux_2_N platform to the
# older ones a wheel may carry, so every one is listed, with the legacy names.
SANDBOX_PYTHON = (
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    *(
        arg
        for tag in [
            *(f"manylinux_2_{n}" for n in range(SANDBOX_GLIBC, 4, -1)),
            "manylinux2014",
            "manylinux2010",
            "manylinux1",
        ]
        for arg in ("--platform", f"{tag}_{platform.machine()}")
    ),
)


def image_exists(client, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except ImageNotFound:
        return False


def _base(client, settings: Settings) -> str:
    if settings.base_image:
        return settings.base_image
    if image_exists(client, REGISTRY_BASE) or not image_exists(client, OFFLINE_BASE):
        return REGISTRY_BASE
    return OFFLINE_BASE


def recipe_tag(base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for name in RECIPE_FILES:
        digest.update((RECIPE / name).read_bytes())
    return f"covsweep-sandbox:{digest.hexdigest()[:12]}"


def _pip(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *map(str, args), "-q"], capture_output=True, text=True)


def pip_failure(stderr: str) -> str:
    """The ERROR line of pip's that names the requirement: `No matching distribution found for X`,
    else the first (for a conflict, the last one only says ResolutionImpossible)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [
        line.removeprefix("ERROR:").strip()
        for line in lines
        if line.startswith("ERROR:") and not line.startswith("ERROR: Ignored the following")
    ]
    named = [line for line in errors if line.startswith("No matching distribution found for")]
    return (named or errors or lines[-1:] or ["pip failed"])[0][:300]


def _host_builds(wheelhouse: Path) -> list[str]:
    """Wheels pip built on this host from sdists with compiled code: they fit this host, not the sandbox."""
    return [
        wheel.name
        for wheel in wheelhouse.glob("*.whl")
        if any(tag.platform.startswith("linux_") for tag in parse_wheel_filename(wheel.name)[3])
    ]


def fill_wheelhouse(
    wheelhouse: Path,
    requirements: list[Path],
    *,
    constraints: list[Path] = (),
    what: str = "sandbox image build failed: cannot download its wheels",
    build_sdists: bool = False,
) -> None:
    """Download wheels for the sandbox's Python on the host: builds have no network.

    build_sdists: a requirement with no wheel is built into one by this host's pip, which works
    for pure-Python sdists only (this host's Python must be the sandbox's 3.11)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    sources = [a for r in requirements for a in ("-r", r)] + [a for c in constraints for a in ("-c", c)]
    proc = _pip("download", "-d", wheelhouse, *SANDBOX_PYTHON, "--only-binary=:all:", *sources)
    if proc.returncode and build_sdists and sys.version_info[:2] == SANDBOX_VERSION:
        proc = _pip("wheel", "-w", wheelhouse, "--prefer-binary", *sources)
        if not proc.returncode and (compiled := _host_builds(wheelhouse)):
            raise InputError(f"{what}: {compiled[0]} has no wheel for the sandbox, only an sdist that needs compiling")
    if proc.returncode:
        raise InputError(f"{what}: {pip_failure(proc.stderr)}")


def build_failure(exc: Exception) -> str:
    """One line for a failed image build: pip's own ERROR line from the build log where there is one."""
    for entry in getattr(exc, "build_log", None) or []:
        for line in str(entry.get("stream", "")).splitlines():
            if line.strip().startswith("ERROR:"):
                return line.strip().removeprefix("ERROR:").strip()
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]


def build_image(client, tag: str, files: dict[str, Path], wheelhouse: Path, buildargs: dict[str, str]) -> None:
    """Build `tag` from `files` and the wheelhouse alone, with no network; raises docker's BuildError or APIError."""
    with tempfile.TemporaryDirectory(prefix="covsweep-image-") as context:
        for name, path in files.items():
            shutil.copy(path, Path(context) / name)
        shutil.copytree(wheelhouse, Path(context) / "wheelhouse")
        client.images.build(path=context, tag=tag, buildargs=buildargs, network_mode="none", rm=True, forcerm=True)


def existing_sandbox_image(settings: Settings) -> str | None:
    """The image ensure_sandbox_image gives, if it is there already: nothing is built."""
    client = docker_client()
    tag = settings.sandbox_image or recipe_tag(_base(client, settings))
    return tag if image_exists(client, tag) else None


def ensure_sandbox_image(settings: Settings) -> str:
    """The image to run sandboxes in; built when its recipe changed or it is missing."""
    client = docker_client()
    if settings.sandbox_image:
        if not image_exists(client, settings.sandbox_image):
            raise InputError(
                f"sandbox image {settings.sandbox_image} (COVSWEEP_SANDBOX_IMAGE or block "
                "covsweep-sandbox) is not present"
            )
        return settings.sandbox_image
    base = _base(client, settings)
    tag = recipe_tag(base)
    if image_exists(client, tag):
        return tag
    wheelhouse = settings.cache_dir / "wheelhouse"
    # One resolution per environment: Pynguin's setuptools and the build environment's differ.
    for name in RECIPE_FILES:
        if name.endswith(".txt"):
            fill_wheelhouse(wheelhouse, [RECIPE / name])
    try:
        build_image(client, tag, {name: RECIPE / name for name in RECIPE_FILES}, wheelhouse, {"BASE": base})
    except (BuildError, APIError) as exc:
        hint = (
            f" (no base image {base}: run `make image` to build one offline)" if not image_exists(client, base) else ""
        )
        raise InputError(f"sandbox image build failed: {build_failure(exc)}{hint}") from None
    return tag


if __name__ == "__main__":
    from tasks.core.settings import load

    print(ensure_sandbox_image(load()))
