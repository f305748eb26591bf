"""Where a run reads its target: the user's directory as it is, or a clone of its own in the run's
workspace, for a repository URL and for a work tree whose tests are delivered as a patch or a branch
(nothing is then written into the user's checkout, and what is delivered is what was measured)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from tasks.core.errors import InputError
from tasks.core.log import get_logger
from tasks.core.models import Source
from tasks.core.settings import Settings
from tasks.project.git import GitError, git
from tasks.project.remote import detach_secret, is_repository_url
from tasks.project.repository import AccessDenied, checkout, origin_url, probe

DeliveryKind = Literal["write", "patch", "branch"]


def delivery_kind(target: str, deliver: str | None) -> DeliveryKind:
    """--deliver as given; by default write for a directory, patch for a repository."""
    return deliver or ("patch" if is_repository_url(target) else "write")


def runs_on_a_clone(target: str, deliver: str | None) -> bool:
    return delivery_kind(target, deliver) != "write"


def work_tree_root(path: Path, kind: str) -> Path:
    """The top of the git work tree that `path` (a directory or a .py file) is in."""
    if not path.exists():
        raise InputError(f"target {path} does not exist")
    try:
        top = git("rev-parse", "--show-toplevel", cwd=path if path.is_dir() else path.parent).strip()
    except GitError:
        raise InputError(f"--deliver {kind} needs a git work tree, and {path} is in none") from None
    if not top:  # inside a .git folder
        raise InputError(f"--deliver {kind} needs a git work tree, and {path} is in none")
    return Path(top).resolve()


def check_no_ref(ref: str | None) -> None:
    """A directory whose tests are written into it is run as it is, at no commit."""
    if ref is not None:
        raise InputError("--ref picks a commit of a repository TARGET, or of a work tree with --deliver patch|branch")


def check_source(target: str, ref: str | None, deliver: str | None, settings: Settings) -> Path | None:
    """What cloning the target would refuse, found without cloning and without Prefect: for a URL one
    ls-remote (unreachable, empty, no such ref); for a directory, that it is in a git work tree that
    has --ref. Returns that work tree's top (None for a URL, or a directory written into)."""
    kind = delivery_kind(target, deliver)
    if is_repository_url(target):
        try:
            probe(target, ref, settings, load_block=False)
        except AccessDenied:
            # A token saved only in the Secret block is not read before Prefect starts: the plan asks again.
            if settings.git_token is not None or detach_secret(target)[1] is not None:
                raise
        return None
    if kind == "write":
        check_no_ref(ref)
        return None
    top = work_tree_root(Path(target).expanduser().resolve(), kind)
    if ref is not None:
        probe(top.as_uri(), ref, settings, load_block=False)  # as its clone will look for it
    return top


class Cloned(BaseModel):
    """The run's own copy of its target, detached at one commit: discovered, written into, delivered from."""

    root: Path  # the clone's top
    target: Path  # the TARGET inside it
    source: Source  # the report's `source`
    work_tree: Path | None = None  # the user's work tree it was cloned from, for a directory TARGET


def _warn_uncommitted(top: Path) -> None:
    if git("status", "--porcelain", "--untracked-files=no", cwd=top).strip():
        get_logger("covsweep").warning(
            "%s has uncommitted changes: the run measures its last commit, and delivers on top of it", top
        )


def clone_target(target: str, ref: str | None, deliver: str | None, into: Path, settings: Settings) -> Cloned:
    """A repository URL cloned at `ref` (default: its HEAD), or the work tree of a directory TARGET
    cloned at `ref` (default: its HEAD), into the empty or missing folder `into`."""
    if is_repository_url(target):
        made = checkout(target, ref, into, settings)
        return Cloned(root=made.path, target=made.path, source=made.source)
    path = Path(target).expanduser().resolve()
    top = work_tree_root(path, delivery_kind(target, deliver))
    _warn_uncommitted(top)
    made = checkout(top.as_uri(), ref, into, settings)
    inside = made.path / path.relative_to(top)
    if not inside.exists():
        raise InputError(f"{path} is not in commit {made.commit[:12]} of {top}: commit it, or use --deliver write")
    source = Source(repository=str(top), ref=made.ref, commit=made.commit)
    return Cloned(root=made.path, target=inside, source=source, work_tree=top)


def out_in_clone(out: str | None, cloned: Cloned) -> Path | None:
    """--out inside the clone (None: the default). A repository's --out is relative to its root; a work
    tree's is where the user named it, found again in the clone. Only the clone is ever delivered from."""
    if out is None:
        return None
    given = Path(out).expanduser()
    if cloned.work_tree is not None:
        mine = given.resolve()
        if not mine.is_relative_to(cloned.work_tree):
            raise InputError(f"--out {mine} is outside the git work tree {cloned.work_tree}: it cannot be delivered")
        return cloned.root / mine.relative_to(cloned.work_tree)
    inside = (cloned.root / given).resolve()
    if not inside.is_relative_to(cloned.root):
        raise InputError(f"--out {out} is outside the repository: give a folder relative to its root")
    return inside


def push_url(target: str, source: Source) -> str:
    """Where --deliver branch pushes: the repository TARGET, else the origin of the user's work tree, read
    when it is needed (a token in it is never copied into a plan)."""
    return target if is_repository_url(target) else origin_url(Path(source.repository))
