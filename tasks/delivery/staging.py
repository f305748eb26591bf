"""The generated files as a git tree on top of a commit, built beside a repository rather than in it:
a private index and a private object folder, so the user's index, work tree, refs and objects stay as
they were."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType

from tasks.core.errors import InputError
from tasks.core.log import get_logger
from tasks.core.markers import is_covsweep_file
from tasks.project.git import GitError, git
from tasks.project.remote import Remote

NOTHING_KEPT = "no test was kept: nothing to deliver"


def generated_files(out: Path) -> list[Path]:
    """covsweep's files under `out` (those with its marker): no cache, no file of anyone else."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted(p for p in out.rglob("*.py") if "__pycache__" not in p.parts and is_covsweep_file(p))


class Staging:
    """`with Staging(repo) as staging:` a tree of the base commit plus files, and a commit of it, made
    without writing anything into `repo`'s .git."""

    def __init__(self, repo: Path):
        try:
            self.top = Path(git("rev-parse", "--show-toplevel", cwd=repo).strip()).resolve()
            objects = git("rev-parse", "--path-format=absolute", "--git-path", "objects", cwd=self.top).strip()
        except GitError:
            raise InputError(f"{repo} is not in a git work tree") from None
        self._objects = objects
        self._scratch: tempfile.TemporaryDirectory | None = None
        self.env: dict[str, str] = {}

    def __enter__(self) -> Staging:
        self._scratch = tempfile.TemporaryDirectory(prefix="covsweep-staging-")
        scratch = Path(self._scratch.name)
        (scratch / "objects").mkdir()
        self.env = {
            "GIT_INDEX_FILE": str(scratch / "index"),
            # New objects go to the scratch folder; the repository's own are read through it.
            "GIT_OBJECT_DIRECTORY": str(scratch / "objects"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": self._objects,
        }
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None):
        if self._scratch is not None:
            self._scratch.cleanup()

    def git(self, *args: str, input: str | None = None, remote: Remote | None = None, timeout: float = 600.0) -> str:
        return git(*args, cwd=self.top, env=self.env, input=input, remote=remote, timeout=timeout)

    def _paths(self, out: Path, files: list[Path]) -> list[str]:
        """The files' paths in the repository; every one must be under `out`, `out` in the work tree."""
        out = Path(out).resolve()
        if not out.is_relative_to(self.top):
            raise InputError(f"--out {out} is outside the git work tree {self.top}: nothing of it can be delivered")
        paths = []
        for file in files:
            file = Path(file).resolve()
            if not file.is_relative_to(out) or not file.is_file():
                raise ValueError(f"{file} is not a file under {out}: only --out is ever delivered")
            paths.append(file.relative_to(self.top).as_posix())
        return paths

    def tree_with(self, base: str, out: Path, files: list[Path] | None = None) -> str | None:
        """The tree of `base` with `files` (default: covsweep's files under `out`) added or replaced; None
        when that changes nothing."""
        paths = self._paths(out, generated_files(out) if files is None else files)
        if not paths:
            get_logger("covsweep.delivery").info(NOTHING_KEPT)
            return None
        self.git("read-tree", base)
        blobs = self.git("hash-object", "-w", "--stdin-paths", input="\n".join(paths) + "\n").split()
        modes = ["100755" if os.access(self.top / p, os.X_OK) else "100644" for p in paths]
        entries = "".join(f"{mode} {blob}\t{path}\n" for mode, blob, path in zip(modes, blobs, paths, strict=True))
        self.git("update-index", "--index-info", input=entries)
        tree = self.git("write-tree").strip()
        if tree == self.git("rev-parse", f"{base}^{{tree}}").strip():
            get_logger("covsweep.delivery").info("the generated files are already at %s: nothing to deliver", base)
            return None
        return tree
