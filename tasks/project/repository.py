"""A repository TARGET on this host: cloned at a ref, shallow where the server allows it."""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import uuid
from pathlib import Path

from pydantic import BaseModel

from tasks.core.errors import InputError
from tasks.core.models import Source
from tasks.core.settings import Settings, load
from tasks.project.git import GitError, explanation, git
from tasks.project.remote import Remote, resolve

FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
ABBREVIATED_SHA = re.compile(r"[0-9a-f]{4,64}")
# What git says when it was refused for who it is (HTTP, ssh) rather than for where it went.
AUTH_FAILURES = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "permission denied",
    "error: 401",
    "error: 403",
    "http 401",
    "http 403",
)


class Checkout(BaseModel):
    """A clone on this host, detached at `commit`."""

    path: Path
    repository: str  # the URL without credentials
    ref: str | None  # as asked for; the remote HEAD's branch when none was
    commit: str

    @property
    def source(self) -> Source:
        return Source(repository=self.repository, ref=self.ref, commit=self.commit)


class AccessDenied(InputError):
    """The remote refused who git said it was (or git had nobody to say)."""


def access_error(remote: Remote, error: GitError) -> InputError:
    """The one line a user reads when `remote` could not be read or written: refused, or not there."""
    if any(sign in error.output.lower() for sign in AUTH_FAILURES):
        return AccessDenied(f"authentication to {remote.url} failed: {explanation(error.output)}")
    return InputError(f"cannot reach {remote.url}: {explanation(error.output)}")


def remote_refs(remote: Remote, timeout: float) -> tuple[dict[str, str], str | None]:
    """(ref name -> commit or tag object, the branch the remote's HEAD names) in one round trip."""
    try:
        listing = git("ls-remote", "--symref", remote.url, remote=remote, timeout=timeout)
    except GitError as exc:
        raise access_error(remote, exc) from None
    refs, head = {}, None
    for line in listing.splitlines():
        value, _, name = line.partition("\t")
        if value.startswith("ref: ") and name == "HEAD":
            head = value.removeprefix("ref: ").removeprefix("refs/heads/")
        elif name:
            refs[name] = value
    return refs, head


def _advertised(refs: dict[str, str], ref: str) -> str | None:
    """The full name of `ref` among the remote's refs: a branch before a tag, as `git clone --branch`."""
    for name in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
        if name.startswith("refs/") and name in refs:
            return name
    return None


def _check_refs(remote: Remote, refs: dict[str, str], ref: str | None) -> None:
    if not refs:
        raise InputError(f"repository {remote.url} is empty")
    if ref is None and "HEAD" not in refs:
        raise InputError(f"{remote.url} has no HEAD (it names a branch that does not exist): give --ref")


def _fetch(path: Path, remote: Remote, wanted: str, timeout: float) -> str:
    """Fetch `wanted` (a ref name or a full sha) alone and shallow; the commit it names."""
    git("fetch", "--quiet", "--depth", "1", "--no-tags", "origin", wanted, cwd=path, remote=remote, timeout=timeout)
    return git("rev-parse", "FETCH_HEAD^{commit}", cwd=path).strip()


def _fetch_sha(path: Path, remote: Remote, sha: str, timeout: float) -> str | None:
    """A commit named by its sha: shallow when the server hands out unadvertised commits (protocol v2, or
    uploadpack.allowAnySHA1InWant) and the sha is whole, else looked up in a full fetch."""
    if FULL_SHA.fullmatch(sha):
        try:
            return _fetch(path, remote, sha, timeout)
        except GitError:
            pass
    try:
        git(
            "fetch",
            "--quiet",
            "--tags",
            "origin",
            "+refs/heads/*:refs/remotes/origin/*",
            cwd=path,
            remote=remote,
            timeout=timeout,
        )
    except GitError as exc:
        raise access_error(remote, exc) from None
    try:
        return git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{sha}^{{commit}}", cwd=path).strip()
    except GitError:
        return None


def _resolve_and_fetch(path: Path, remote: Remote, ref: str | None, timeout: float) -> tuple[str, str | None]:
    """(commit, ref name for the report) once the commit is in the clone at `path`."""
    refs, head = remote_refs(remote, timeout)
    _check_refs(remote, refs, ref)
    name = "HEAD" if ref is None else _advertised(refs, ref)
    if name is not None:
        try:
            return _fetch(path, remote, name, timeout), ref if ref is not None else head
        except GitError as exc:
            raise access_error(remote, exc) from None
    commit = _fetch_sha(path, remote, ref.lower(), timeout) if ABBREVIATED_SHA.fullmatch(ref.lower()) else None
    if commit is None:
        raise InputError(f"ref {ref} does not exist in {remote.url}")
    return commit, ref


def probe(url: str, ref: str | None, settings: Settings | None = None, load_block: bool = True) -> dict[str, str]:
    """What `checkout` would refuse, found in one round trip and without cloning: the URL cannot be
    reached, the credentials are refused (AccessDenied), the repository is empty, `ref` is no branch or
    tag (a sha is only looked for in the clone). Returns the remote's refs (name -> object)."""
    settings = settings or load()
    remote = resolve(url, settings, load_block)
    refs, _ = remote_refs(remote, settings.git_timeout)
    _check_refs(remote, refs, ref)
    if ref is not None and not _advertised(refs, ref) and not ABBREVIATED_SHA.fullmatch(ref.lower()):
        raise InputError(f"ref {ref} does not exist in {remote.url}")
    return refs


def origin_url(work_tree: Path, name: str = "origin") -> str:
    """Where a user's work tree pushes to: the URL to deliver a branch to when the TARGET is a directory."""
    try:
        return git("remote", "get-url", "--push", name, cwd=work_tree).strip()
    except GitError:
        raise InputError(f"{work_tree} has no git remote {name!r} to push a branch to; use --deliver patch") from None


def clone(remote: Remote, ref: str | None, workspace: Path, timeout: float) -> Checkout:
    """`remote` cloned into the empty (or missing) folder `workspace`, detached at `ref`."""
    workspace = Path(workspace)
    if workspace.exists() and any(workspace.iterdir()):
        raise ValueError(f"{workspace} is not empty")
    workspace.mkdir(parents=True, exist_ok=True)
    try:
        git("init", "--quiet", str(workspace))
        git("remote", "add", "origin", remote.url, cwd=workspace)  # .git/config gets the URL without credentials
        commit, name = _resolve_and_fetch(workspace, remote, ref, timeout)
        git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit, cwd=workspace)
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    return Checkout(path=workspace.resolve(), repository=remote.url, ref=name, commit=commit)


def checkout(url: str, ref: str | None, workspace: Path, settings: Settings | None = None) -> Checkout:
    """Clone `url` into the empty (or missing) folder `workspace`, detached at `ref` (default: the remote's
    HEAD); InputError, one line without credentials, when the URL, the ref or the credentials are wrong."""
    settings = settings or load()
    return clone(resolve(url, settings), ref, workspace, settings.git_timeout)


def checkout_cached(url: str, commit: str, cache_dir: Path, settings: Settings | None = None) -> Checkout:
    """The clone of `url` at the full sha `commit` below `cache_dir`, made once per host and commit however
    many tasks and runs ask at once. It is shared: read it, never write into it."""
    if not FULL_SHA.fullmatch(commit):
        raise ValueError(f"checkout_cached needs a full commit sha, not {commit!r}")
    settings = settings or load()
    remote = resolve(url, settings)
    folder = Path(cache_dir).expanduser() / "repositories" / hashlib.sha256(remote.url.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / commit
    with open(folder / f"{commit}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one clone per host and commit: the others wait, then read it
        if not path.exists():
            # Cloned aside, then renamed: a clone cut short is never taken for a whole one.
            partial = folder / f".{commit}.{uuid.uuid4().hex[:8]}"
            clone(remote, commit, partial, settings.git_timeout)
            partial.rename(path)
    return Checkout(path=path.resolve(), repository=remote.url, ref=commit, commit=commit)


CHANGED_SINCE_REF = "refs/covsweep/changed-since"
HISTORY_DEPTHS = (50, 500)  # then the whole history: most pull requests branch off a recent commit


def _has_merge_base(path: Path) -> bool:
    try:
        git("merge-base", CHANGED_SINCE_REF, "HEAD", cwd=path)
    except GitError:
        return False
    return True


def fetch_history_for(checkout: Checkout, ref: str, settings: Settings | None = None) -> str:
    """What `--changed-since REF` needs in a shallow clone: REF's commit and the history of REF and of
    the clone's commit back to their merge base, deepened step by step. The local name to give
    `changed_since` instead of REF (the report says REF); InputError when the remote has no such ref."""
    settings = settings or load()
    remote = resolve(checkout.repository, settings)
    refs, _ = remote_refs(remote, settings.git_timeout)
    wanted = _advertised(refs, ref.removeprefix("origin/")) or ref
    # The clone's own commit is fetched along: deepening reaches back from both tips.
    fetch = ["fetch", "--quiet", "--no-tags", "origin", f"+{wanted}:{CHANGED_SINCE_REF}", checkout.commit]
    try:
        for depth in HISTORY_DEPTHS:
            git(
                fetch[0], f"--depth={depth}", *fetch[1:], cwd=checkout.path, remote=remote, timeout=settings.git_timeout
            )
            if _has_merge_base(checkout.path):
                return CHANGED_SINCE_REF
        if git("rev-parse", "--is-shallow-repository", cwd=checkout.path).strip() == "true":
            git(fetch[0], "--unshallow", *fetch[1:], cwd=checkout.path, remote=remote, timeout=settings.git_timeout)
    except GitError as exc:
        raise InputError(
            f"--changed-since: {ref} is not a branch, tag or commit of {remote.url} ({explanation(exc.output)})"
        ) from None
    return CHANGED_SINCE_REF
