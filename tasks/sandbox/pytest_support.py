"""How covsweep runs pytest in a sandbox and reads back what each test did."""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

from tasks.core.models import ProjectRef

PER_TEST_TIMEOUT_S = 30


def pytest_args(paths: list[Path], junit: Path | None = None) -> str:
    args = [
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--tb=native",
        "-o",
        "addopts=",
        f"--timeout={PER_TEST_TIMEOUT_S}",
    ]
    if junit:
        args.append(f"--junitxml={junit}")
    return " ".join(shlex.quote(a) for a in args + [str(p) for p in paths])


def sandbox_env(project: ProjectRef) -> dict[str, str]:
    """Import the target as if it were installed, the way its own tests would see it."""
    return {"PYTHONPATH": str(project.import_root), "PYTHONDONTWRITEBYTECODE": "1"}


def junit_outcomes(junit: Path, stem: str) -> dict[str, bool]:
    """qualname -> passed for the tests of module `stem`, from one pytest run's JUnit XML
    (parametrized cases folded)."""
    if not junit.exists():
        return {}
    results: dict[str, bool] = {}
    for case in ET.parse(junit).iter("testcase"):
        parts = case.get("classname", "").split(".")
        if stem not in parts:
            continue
        prefix = ".".join(parts[parts.index(stem) + 1 :])
        name = case.get("name", "").split("[")[0]
        qualname = f"{prefix}.{name}" if prefix else name
        bad = any(child.tag in ("failure", "error") for child in case) or any(
            child.tag == "skipped" and child.get("type") != "pytest.xfail" for child in case
        )
        results[qualname] = results.get(qualname, True) and not bad
    return results
