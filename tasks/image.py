"""The sandbox image: built once from deployments/sandbox, tagged by a hash of its recipe."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from docker.errors import BuildError, ImageNotFound, APIError

from covsweep.settings import REPO_ROOT, Settings
from tasks.models import InputError
from tasks.sandbox import docker_client

RECIPE = REPO_ROOT / "deployments" / "sandbox"
RECIPE_FILES = ("Dockerfile", "runner.txt", "pynguin.txt")
REGISTRY_BASE = "python:3.11-slim"
OFFLINE_BASE = "covsweep-base:bookworm"


def _exists(client, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except ImageNotFound:
        return False


def _base(client, settings: Settings) -> str:
    if settings.base_image:
        return settings.base_image
    if _exists(client, REGISTRY_BASE) or not _exists(client, OFFLINE_BASE):
        return REGISTRY_BASE
    return OFFLINE_BASE


def recipe_tag(base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for name in RECIPE_FILES:
        digest.update((RECIPE / name).read_bytes())
    return f"covsweep-sandbox:{digest.hexdigest()[:12]}"


def fill_wheelhouse(wheelhouse: Path, requirements: list[Path]) -> None:
    """Download wheels for the sandbox's Python on the host: builds have no network."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheelhouse),
            "--python-version", "3.11", "--only-binary=:all:"]
    for req in requirements:
        args += ["-r", str(req)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise InputError(f"sandbox image build failed: cannot download its wheels: {last}")


def ensure_sandbox_image(settings: Settings) -> str:
    """The image to run sandboxes in; built when its recipe changed or it is missing."""
    client = docker_client()
    if settings.sandbox_image:
        if not _exists(client, settings.sandbox_image):
            raise InputError(f"sandbox image {settings.sandbox_image} (COVSWEEP_SANDBOX_IMAGE) is not present")
        return settings.sandbox_image
    base = _base(client, settings)
    tag = recipe_tag(base)
    if _exists(client, tag):
        return tag
    wheelhouse = settings.cache_dir / "wheelhouse"
    fill_wheelhouse(wheelhouse, [RECIPE / "runner.txt", RECIPE / "pynguin.txt"])
    with tempfile.TemporaryDirectory(prefix="covsweep-image-") as context:
        for name in RECIPE_FILES:
            shutil.copy(RECIPE / name, context)
        shutil.copytree(wheelhouse, Path(context) / "wheelhouse")
        try:
            client.images.build(path=context, tag=tag, buildargs={"BASE": base},
                                network_mode="none", rm=True, forcerm=True)
        except (BuildError, APIError) as exc:
            hint = f" (no base image {base}: run `make image` to build one offline)" if not _exists(client, base) else ""
            raise InputError(f"sandbox image build failed: {str(exc).splitlines()[0]}{hint}") from None
    return tag


if __name__ == "__main__":
    from covsweep.settings import load

    print(ensure_sandbox_image(load()))
