"""Delivery as a patch: a unified diff that adds (or updates) the generated files, for `git apply`."""

from __future__ import annotations

from pathlib import Path

from tasks.delivery.staging import Staging

# Plumbing with every option a user's configuration could change spelled out: `git apply` (-p1) takes it.
DIFF_OPTIONS = (
    "--patch",
    "--full-index",
    "--binary",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


def make_patch(repo: Path, base: str, out: Path, files: list[Path] | None = None) -> str | None:
    """The diff from commit `base` to `base` plus the generated files under `out` (default: every file of
    covsweep's there), paths from the repository's root; None when no test was kept. `repo` is a clone or
    the user's own work tree: neither its index nor its work tree nor its .git is written to."""
    with Staging(repo) as staging:
        tree = staging.tree_with(base, out, files)
        return staging.git("diff-tree", *DIFF_OPTIONS, base, tree) if tree is not None else None
