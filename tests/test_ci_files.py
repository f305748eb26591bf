"""The CI examples in docs/ci: what they run is a covsweep command its parser accepts, and the ref they
pass resolves to the pull request's own change on a repository laid out as CI checks it out."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from covsweep.arguments import given
from covsweep.cli import parser
from tasks.core.options import RunOptions
from tasks.project.changes import changed_since
from tests.conftest import REPO
from tests.helpers import write_project
from tests.test_changes import commit_all, git

GITHUB = REPO / "docs/ci/github-actions.yml"
GITLAB = REPO / "docs/ci/gitlab-ci.yml"
# What the CI systems put in the variables the examples use, for a pull request into main.
CI_VALUES = {"BASE_REF": "main", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}


def github_steps() -> list[dict]:
    (job,) = yaml.safe_load(GITHUB.read_text())["jobs"].values()
    return job["steps"]


def gitlab_job() -> dict:
    return yaml.safe_load(GITLAB.read_text())["covsweep"]


def shell_lines(script: str) -> list[str]:
    """Commands of a shell script, continuation lines joined."""
    return [line.strip() for line in script.replace("\\\n", " ").splitlines() if line.strip()]


def expanded(line: str) -> list[str]:
    """A command line as the shell would pass it on, with the CI's values in its variables."""
    line = re.sub(r"\$\{?(\w+)\}?", lambda m: CI_VALUES.get(m.group(1), m.group(0)), line)
    return shlex.split(line)


def covsweep_commands(scripts: list[str]) -> list[list[str]]:
    return [expanded(line) for script in scripts for line in shell_lines(script) if line.startswith("covsweep ")]


def options(argv: list[str]) -> RunOptions:
    args = parser().parse_args(argv[1:])
    assert args.command == "run"
    return RunOptions(**given(args))


@pytest.mark.parametrize(
    "scripts",
    [
        pytest.param(lambda: [s["run"] for s in github_steps() if "run" in s], id="github"),
        pytest.param(lambda: gitlab_job()["script"], id="gitlab"),
    ],
)
def test_the_examples_run_a_covsweep_command_the_parser_accepts(scripts):
    (command,) = covsweep_commands(scripts())

    run = options(command)

    assert run.target == "."
    assert (run.changed_since, run.deliver, run.summary_md, run.fail_under_diff) == (
        "origin/main",
        "patch",
        "covsweep-summary.md",
        80.0,
    )


def test_the_github_workflow_has_history_a_summary_a_comment_and_the_patch():
    steps = github_steps()
    by_uses = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}

    assert by_uses["actions/checkout"]["with"]["fetch-depth"] == 0
    assert any('>> "$GITHUB_STEP_SUMMARY"' in s.get("run", "") for s in steps)
    assert "createComment" in by_uses["actions/github-script"]["with"]["script"]
    artifact = by_uses["actions/upload-artifact"]
    assert ".covsweep/covsweep.patch" in artifact["with"]["path"] and artifact["with"]["include-hidden-files"]
    # Published even when a gate fails the covsweep step (exit status 3).
    assert all(s["if"].startswith("always()") for s in steps[steps.index(by_uses["actions/upload-artifact"]) - 1 :])
    assert yaml.safe_load(GITHUB.read_text())["permissions"]["pull-requests"] == "write"


def test_the_gitlab_job_has_docker_in_docker_history_and_the_patch():
    job = gitlab_job()

    assert any(s["name"].startswith("docker:") and s["name"].endswith("-dind") for s in job["services"])
    assert job["variables"]["DOCKER_HOST"] == "tcp://docker:2375"
    assert job["variables"]["GIT_DEPTH"] == "0"
    assert job["artifacts"]["when"] == "always"
    assert ".covsweep/covsweep.patch" in job["artifacts"]["paths"]


@pytest.fixture
def pull_request(tmp_path) -> tuple[Path, Path]:
    """An origin whose main moved on after a feature branch left it, and a full clone of the feature branch."""
    origin = write_project(tmp_path / "work", {"pkg/__init__.py": "", "pkg/a.py": "A = 1\n", "pkg/b.py": "B = 1\n"})
    git(origin, "init", "-q")
    commit_all(origin, "base")
    git(origin, "checkout", "-q", "-b", "feature")
    (origin / "pkg/a.py").write_text("A = 1\nA2 = 2\n")
    commit_all(origin, "feature")
    git(origin, "checkout", "-q", "main")
    (origin / "pkg/b.py").write_text("B = 2\n")
    commit_all(origin, "main moved on")
    clone = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "--branch", "feature", str(origin), str(clone))
    return origin, clone


def test_the_github_ref_is_the_pull_requests_change(pull_request):
    _, clone = pull_request
    (command,) = covsweep_commands([s["run"] for s in github_steps() if "run" in s])

    changes = changed_since(clone, options(command).changed_since)

    assert {f.path: f.lines for f in changes.files} == {"pkg/a.py": [2]}


def test_the_gitlab_fetch_then_ref_is_the_merge_requests_change(pull_request):
    _, clone = pull_request
    # GitLab's checkout has no remote-tracking branches: the job's fetch makes origin/<target>.
    git(clone, "update-ref", "-d", "refs/remotes/origin/main")
    script = gitlab_job()["script"]
    (fetch,) = [line for line in script if line.startswith("git fetch")]

    subprocess.run(expanded(fetch), cwd=clone, check=True, capture_output=True)
    (command,) = covsweep_commands(script)
    changes = changed_since(clone, options(command).changed_since)

    assert {f.path: f.lines for f in changes.files} == {"pkg/a.py": [2]}


def test_the_readme_shows_the_github_workflow_as_it_is():
    assert GITHUB.read_text().rstrip("\n") in (REPO / "README.md").read_text()
