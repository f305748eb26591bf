"""A target's declared dependencies as a layer on the sandbox image, built with no network from a
host-side wheelhouse and tagged by a hash of the sandbox image and the requirements."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from docker.errors import BuildError, APIError

from covsweep.settings import REPO_ROOT, Settings
from tasks.image import RECIPE as SANDBOX_RECIPE, SANDBOX_PYTHON, build_failure, build_image, \
    ensure_sandbox_image, fill_wheelhouse, image_exists
from tasks.models import InputError
from tasks.requirements import declared_requirements
from tasks.sandbox import docker_client

RECIPE = REPO_ROOT / "deployments" / "target"
# The runner's own pins: a target may not move coverage or pytest out of what covsweep reads.
CONSTRAINTS = SANDBOX_RECIPE / "runner.txt"


def target_tag(sandbox_id: str, requirements: list[str]) -> str:
    """Keyed by the sandbox's image id, not its tag: a rebuilt COVSWEEP_SANDBOX_IMAGE rebuilds the layer too."""
    digest = hashlib.sha256(sandbox_id.encode())
    for part in [(RECIPE / "Dockerfile").read_bytes(), CONSTRAINTS.read_bytes(), " ".join(SANDBOX_PYTHON).encode(),
                 *(r.encode() for r in sorted(set(requirements)))]:
        digest.update(part + b"\0")
    return f"covsweep-target:{digest.hexdigest()[:12]}"


def ensure_target_image(settings: Settings, project_dir: Path) -> str:
    """The sandbox image with the target's declared dependencies installed; the plain sandbox image
    when it declares none. Built only when missing; raises InputError naming what cannot be installed."""
    sandbox = ensure_sandbox_image(settings)
    requirements = declared_requirements(project_dir)
    if not requirements:
        return sandbox
    client = docker_client()
    tag = target_tag(client.images.get(sandbox).id, requirements)
    if image_exists(client, tag):
        return tag
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
            build_image(client, tag, files, wheelhouse, {"SANDBOX": sandbox})
        except (BuildError, APIError) as exc:
            raise InputError(f"{what}: {build_failure(exc)}") from None
    return tag
