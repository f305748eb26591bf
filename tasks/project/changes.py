"""What changed since a git ref: the Python files a change added or modified, and their changed lines.

The comparison is `git diff <merge base of REF and HEAD>` against the work tree, as diff-cover and
`git diff REF...` do: on a branch whose base moved on, the base's own new commits are not the change.
Untracked files that git does not ignore are changed on every line (diff-cover's --include-untracked).
"""

from __future__ import annotations

import codecs
import re
import subprocess
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from tasks.core.errors import InputError
from tasks.core.models import Module

GIT_TIMEOUT_S = 120
# The INFO issue of a module skipped because the change did not touch it.
NOT_CHANGED = "not-changed"
HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


class ChangedFile(BaseModel):
    path: str
    status: Literal["added", "modified", "renamed", "untracked"]
    previous: str | None = None
    lines: list[int]


class Changes(BaseModel):
    """The changed Python files below `target`, paths relative to it."""

    target: Path
    ref: str
    base: str
    files: list[ChangedFile]

    def by_file(self) -> dict[Path, list[int]]:
        """Absolute path -> changed lines."""
        return {(self.target / f.path).resolve(): f.lines for f in self.files}

    def modules(self, modules: list[Module]) -> dict[str, list[int]]:
        """Module.path -> changed lines, for the modules the change touched (Module.file is absolute)."""
        by_file = self.by_file()
        return {m.path: by_file[m.file] for m in modules if m.file in by_file}


def git(target: Path, *args: str) -> subprocess.CompletedProcess:
    # core.quotePath off: non-ASCII names come back as they are; hooks and pagers never run.
    try:
        return subprocess.run(
            ["git", "-c", "core.quotePath=false", "-C", str(target), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise InputError("--changed-since needs git, and git is not installed")


def _unquote(path: str) -> str:
    """A path as git prints it: C-quoted when it holds a tab, a newline, a quote or a backslash."""
    if path.startswith('"') and path.endswith('"'):
        return codecs.escape_decode(path[1:-1].encode())[0].decode("utf-8")
    return path


def _resolve_base(target: Path, ref: str) -> str:
    inside = git(target, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        # git's own words tell a missing repository from one git refuses (another user's: safe.directory).
        said = (inside.stderr.strip().splitlines() or [""])[0]
        raise InputError(f"--changed-since: {target} is not a git work tree" + (f" (git: {said})" if said else ""))
    commit = git(target, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if commit.returncode != 0:
        raise InputError(
            f"--changed-since: {ref!r} is not a commit, branch or tag of {target} "
            "(a shallow clone may lack it: fetch with full history)"
        )
    merge_base = git(target, "merge-base", commit.stdout.strip(), "HEAD")
    # No common history (or no HEAD yet): compare with REF itself.
    return merge_base.stdout.strip() if merge_base.returncode == 0 else commit.stdout.strip()


def _statuses(target: Path, base: str) -> dict[str, tuple[str, str | None]]:
    """path -> (status, previous path) of the files added, modified or renamed since base."""
    listed = git(target, "diff", "-z", "--name-status", "-M", "--relative", "--diff-filter=AMRT", base, "--")
    fields = iter(listed.stdout.split("\0"))
    statuses: dict[str, tuple[str, str | None]] = {}
    for code in fields:
        if not code:
            continue
        if code.startswith("R"):
            previous, path = next(fields), next(fields)
            statuses[path] = ("renamed", previous)
        else:
            statuses[next(fields)] = ("added" if code == "A" else "modified", None)
    return statuses


def _hunk_lines(target: Path, base: str) -> dict[str, list[int]]:
    """path -> the added or modified lines of its new version, from `git diff --unified=0`."""
    diff = git(target, "diff", "--no-color", "--no-ext-diff", "--unified=0", "-M", "--relative", base, "--")
    if diff.returncode != 0:
        raise InputError(f"--changed-since: git diff failed in {target}: {diff.stderr.strip()[:300]}")
    lines: dict[str, list[int]] = {}
    current: str | None = None
    for row in diff.stdout.splitlines():
        if row.startswith("+++ "):
            name = _unquote(row[4:])
            current = None if name == "/dev/null" else name.removeprefix("b/")
            if current is not None:
                lines.setdefault(current, [])
        elif current is not None and (hunk := HUNK.match(row)):
            start, count = int(hunk.group(1)), int(hunk.group(2) or "1")
            lines[current].extend(range(start, start + count))
    return lines


def _untracked(target: Path) -> list[ChangedFile]:
    listed = git(target, "ls-files", "-z", "--others", "--exclude-standard", "--", "*.py")
    found = []
    for path in filter(None, listed.stdout.split("\0")):
        text = (target / path).read_text(errors="replace")
        found.append(ChangedFile(path=path, status="untracked", lines=list(range(1, len(text.splitlines()) + 1))))
    return found


def changed_since(target: Path, ref: str) -> Changes:
    """The Python files below `target` that changed between REF (its merge base with HEAD) and the work
    tree, uncommitted and untracked ones included; deleted files are not changes to cover."""
    target = Path(target).resolve()
    if not target.is_dir():
        raise InputError(f"--changed-since: {target} is not a directory")
    base = _resolve_base(target, ref)
    hunks = _hunk_lines(target, base)
    files = [
        ChangedFile(path=path, status=status, previous=previous, lines=sorted(set(hunks.get(path, []))))
        for path, (status, previous) in sorted(_statuses(target, base).items())
        if path.endswith(".py")
    ]
    files += _untracked(target)
    return Changes(target=target, ref=ref, base=base, files=sorted(files, key=lambda f: f.path))
