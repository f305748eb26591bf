"""Delivery as a branch: one commit of the generated files on a new branch, pushed; nothing else moves."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel

from tasks.core.errors import InputError
from tasks.core.models import ModuleResult, now
from tasks.core.settings import Settings, load
from tasks.delivery.staging import Staging
from tasks.project.git import GitError, explanation, git
from tasks.project.remote import Remote, resolve
from tasks.project.repository import AUTH_FAILURES, access_error, remote_refs

AUTHOR = ("covsweep", "covsweep@localhost")
# What git prints when the branch appeared on the remote after it was looked for.
BRANCH_TAKEN = ("stale info", "already exists", "non-fast-forward", "fetch first")
# What a remote that may be read but not written says to a push: `git daemon` without receive-pack,
# a forge's deploy key or role without write access.
PUSH_DENIED = ("access denied", "denied to", "not allowed to push")


class Pushed(BaseModel):
    """The branch a run delivered: `commit`'s parent is the run's resolved commit."""

    branch: str
    commit: str
    repository: str  # the URL without credentials


def default_branch_name(run_id: str, day: date | None = None) -> str:
    """`covsweep/<YYYY-MM-DD>-<run id prefix 8>`."""
    return f"covsweep/{(day or now().date()).isoformat()}-{run_id[:8]}"


def commit_message(results: list[ModuleResult], run_id: str | None = None) -> str:
    """Line coverage before -> after for each module that got tests, a summary line first."""
    delivered = [r for r in results if r.generated_files]
    lines = [f"{r.module}: line coverage {r.coverage_before.line:.1f}% -> {r.coverage.line:.1f}%" for r in delivered]
    noun = "module" if len(delivered) == 1 else "modules"
    body = "\n".join(lines) + (f"\n\ncovsweep run {run_id}" if run_id else "")
    return f"covsweep: generated tests for {len(delivered)} {noun}\n\n{body}\n"


def _check_name(branch: str) -> None:
    try:
        git("check-ref-format", f"refs/heads/{branch}")
    except GitError:
        raise InputError(f"{branch!r} is not a valid branch name") from None


def _check_absent(remote: Remote, branch: str, timeout: float) -> None:
    if f"refs/heads/{branch}" in remote_refs(remote, timeout)[0]:
        raise InputError(f"branch {branch} exists on {remote.url}")


def check_new_branch(url: str, branch: str, settings: Settings | None = None, load_block: bool = True) -> None:
    """InputError when `branch` is no valid branch name or exists at `url` already: found before a run
    rather than after it (push_branch looks again, and the push itself refuses an existing branch)."""
    settings = settings or load()
    _check_name(branch)
    _check_absent(resolve(url, settings, load_block), branch, settings.git_timeout)


def _identity(staging: Staging) -> dict[str, str]:
    """covsweep is the author; the committer is whoever git is configured as here, else covsweep too."""
    env = {"GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1]}
    try:
        staging.git("var", "GIT_COMMITTER_IDENT")
    except GitError:
        env |= {"GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1]}
    return env


def _refused(remote: Remote, branch: str, error: GitError) -> InputError:
    """Why a push was refused, in one line, quoting what the remote said."""
    text = error.output.lower()
    if any(sign in text for sign in BRANCH_TAKEN):
        return InputError(f"branch {branch} exists on {remote.url}")
    said = "; ".join(
        " ".join(line.removeprefix("remote:").split())
        for line in error.output.splitlines()
        if line.startswith("remote:") and line.removeprefix("remote:").strip()
    )
    quoted = f" (the remote said: {said})" if said else ""
    if any(sign in text for sign in AUTH_FAILURES + PUSH_DENIED):
        return InputError(f"push to {remote.url} refused, permission denied: {explanation(error.output)}{quoted}")
    rejected = [line.split("(", 1)[-1].rstrip(")") for line in error.output.splitlines() if "[remote rejected]" in line]
    if rejected:
        return InputError(f"push of {branch} to {remote.url} refused: {rejected[0]}{quoted}")
    return access_error(remote, error)


def create_branch(staging: Staging, remote: Remote, commit: str, branch: str, timeout: float) -> None:
    """Push `commit` as the new branch `branch`, and nothing else."""
    # Exactly one ref, created: the lease on its absence refuses it if the branch appeared since it was
    # looked for, even at an ancestor (a plain push would fast-forward it); no `+`, no --force.
    lease = f"--force-with-lease=refs/heads/{branch}:"
    try:
        staging.git(
            "push", "--quiet", lease, remote.url, f"{commit}:refs/heads/{branch}", remote=remote, timeout=timeout
        )
    except GitError as exc:
        raise _refused(remote, branch, exc) from None


def push_branch(
    repo: Path,
    base: str,
    out: Path,
    url: str,
    branch: str,
    message: str,
    files: list[Path] | None = None,
    settings: Settings | None = None,
) -> Pushed | None:
    """Commit the generated files under `out` (default: all of covsweep's there) on top of commit `base`
    and push that commit as the new branch `branch` of `url`; None when no test was kept. `repo` is a
    clone or the user's work tree, left as it was. InputError, nothing pushed, when the branch exists or
    the push is refused."""
    settings = settings or load()
    remote = resolve(url, settings)
    _check_name(branch)
    with Staging(repo) as staging:
        tree = staging.tree_with(base, out, files)
        if tree is None:
            return None
        _check_absent(remote, branch, settings.git_timeout)
        commit = git(
            "commit-tree", tree, "-p", base, cwd=staging.top, env=staging.env | _identity(staging), input=message
        ).strip()
        create_branch(staging, remote, commit, branch, settings.git_timeout)
    return Pushed(branch=branch, commit=commit, repository=remote.url)
