"""The checks `covsweep run` makes before Prefect starts: they answer without importing Prefect or Dask,
so a refused run is one line in about half a second. A fresh interpreter each, as the CLI is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.git_fixtures import commit_all, run_git
from tests.helpers import write_project

REPO = Path(__file__).resolve().parents[1]
PREFLIGHT = """
import json, sys
from tasks.checks import preflight
from tasks.core.errors import InputError
from tasks.core.options import RunOptions

try:
    outcome = [m.path for m in preflight(RunOptions(**json.loads(sys.argv[1]))).modules]
except InputError as exc:
    outcome = str(exc)
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"prefect", "distributed", "prefect_dask", "blocks"})
print(json.dumps({"outcome": outcome, "imported": heavy}))
"""


def preflight_alone(**options) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PREFLIGHT, json.dumps(options)], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_a_missing_target_is_refused_without_importing_prefect(tmp_path):
    seen = preflight_alone(target=str(tmp_path / "missing"))
    assert seen == {"outcome": f"target {tmp_path / 'missing'} does not exist", "imported": []}


def calc(root: Path) -> Path:
    return write_project(root, {"calc/__init__.py": "", "calc/ops.py": "def add(a, b):\n    return a + b\n"})


def test_a_target_that_passes_is_checked_without_importing_prefect(tmp_path):
    seen = preflight_alone(target=str(calc(tmp_path / "calc")), sandbox="local", generator="none")
    assert seen == {"outcome": ["calc/ops.py"], "imported": []}


def test_a_work_tree_delivered_as_a_patch_is_checked_with_git_without_importing_prefect(tmp_path):
    project = calc(tmp_path / "calc")
    run_git("init", "-q", "-b", "main", cwd=project)
    commit_all(project, "calc")
    (project / "calc" / "ops.py").write_text("def add(a, b):\n    return b + a\n")  # git status has a say
    seen = preflight_alone(target=str(project), sandbox="local", generator="none", deliver="patch")
    assert seen == {"outcome": ["calc/ops.py"], "imported": []}


def test_a_change_since_no_such_commit_is_refused_without_importing_prefect(tmp_path):
    project = calc(tmp_path / "calc")
    run_git("init", "-q", "-b", "main", cwd=project)
    commit_all(project, "calc")
    seen = preflight_alone(target=str(project), sandbox="local", generator="none", changed_since="nope")
    assert seen["imported"] == []
    assert "nope" in seen["outcome"]


def test_a_work_tree_without_the_ref_to_deliver_from_is_refused_without_importing_prefect(tmp_path):
    project = calc(tmp_path / "calc")
    run_git("init", "-q", "-b", "main", cwd=project)
    commit_all(project, "calc")
    seen = preflight_alone(target=str(project), sandbox="local", generator="none", deliver="patch", ref="nope")
    assert seen == {"outcome": f"ref nope does not exist in {project.as_uri()}", "imported": []}
    run_git("tag", "v1", cwd=project)
    seen = preflight_alone(target=str(project), sandbox="local", generator="none", deliver="patch", ref="v1")
    assert seen == {"outcome": ["calc/ops.py"], "imported": []}


def test_a_work_tree_pushing_a_branch_its_remote_has_is_refused_without_importing_prefect(tmp_path):
    remote = tmp_path / "origin.git"
    run_git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    project = calc(tmp_path / "calc")
    run_git("init", "-q", "-b", "main", cwd=project)
    commit_all(project, "calc")
    run_git("remote", "add", "origin", remote.as_uri(), cwd=project)
    run_git("push", "-q", "origin", "main:feature", cwd=project)
    options = {"target": str(project), "sandbox": "local", "generator": "none", "deliver": "branch"}
    seen = preflight_alone(**options, branch="feature")
    assert seen == {"outcome": f"branch feature exists on {remote.as_uri()}", "imported": []}
    assert preflight_alone(**options, branch="fresh") == {"outcome": ["calc/ops.py"], "imported": []}
