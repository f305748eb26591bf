"""The Docker sandbox's read-only snapshot of the target, and the walk over a project's files it shares
with OpenHands' scratch copy.

The sandbox runs as uid 1000 and mounts the target read-only at its own path: a target in a private
folder (mode 0700: mktemp, a umask of 077, root's home) is unreadable there. So the sandbox mounts a
copy instead, taken once per run (on first use, on each host that runs the sandbox) into the run's
workspace, every folder and file readable by everyone, at the target's path: every path (coverage
data, junit files, module files) stays the host's. The copy is also a consistent view of the code:
edits made while the run goes on do not show, except in the --out folder, which covsweep itself
writes and which each whole-project measurement copies again (refresh_output).

Every run that generates tests gets one: it reads the target for minutes or hours, while its user
may edit it. A coverage-only run (--generator none) of a target everyone may read does not: it reads
the target once, and mounts it as it is, as before.

Files are copied, not hard-linked: a link shares the file, and an editor that saves in place (as vim
does once a file has a second link) would change the snapshot too. Files of LINK_MIN_BYTES and more
that everyone may read are linked: data, not code a user edits during a run, and costly to copy.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from tasks.core.errors import InputError
from tasks.core.log import get_logger
from tasks.core.models import Snapshot

# Left out of a snapshot (and of OpenHands' copy), besides folders whose name starts with a dot (VCS,
# caches, tool state) and virtualenvs: what the project's tests do not read.
PRUNED_DIRS = {"__pycache__", "node_modules", "build", "dist"}
LINK_MIN_BYTES = 1 << 20
# Past these, the target is not one project (a lone script's folder may be a home directory).
MAX_FILES = 50_000
MAX_COPY_BYTES = 1 << 30
# One snapshot taken at a time in this process: module threads wait for it, and take it only once.
_taking = threading.Lock()


def pruned(folder: Path, name: str) -> bool:
    return (
        name.startswith(".")
        or name in PRUNED_DIRS
        or name.endswith(".egg-info")
        or (folder / name / "pyvenv.cfg").exists()
    )


def _entries(root: Path) -> Iterator[os.DirEntry]:
    """Folders, files and symbolic links below root, each folder before what it holds, pruned folders
    left out; symbolic links (to folders too) are not followed."""
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                found = list(listing)
        except OSError:
            continue  # unreadable, or removed meanwhile
        for entry in found:
            if entry.is_dir(follow_symlinks=False):
                if not pruned(folder, entry.name):
                    yield entry
                    pending.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                yield entry


def project_files(root: Path) -> list[Path]:
    """Files and symbolic links below root, without VCS, caches, build output and virtualenvs."""
    return sorted(Path(e.path) for e in _entries(root) if not e.is_dir(follow_symlinks=False))


def _file_digest(digest, file: Path) -> None:
    """A file's name and content, a symbolic link's target too: what a test run could read of it."""
    digest.update(os.fsencode(file) + b"\0")  # a name need not be UTF-8
    if file.is_symlink():
        digest.update(b"->" + os.fsencode(os.readlink(file)) + b"\0")
    try:
        digest.update(file.read_bytes() if file.is_file() else b"(no file)")
    except OSError:
        digest.update(b"(unreadable)")
    digest.update(b"\0")


def content_digest(digest, target: Path, test_paths: list[Path]) -> None:
    """Every file of the target, and of the test paths outside it, into `digest`."""
    outside = [p for p in test_paths if not p.is_relative_to(target)]
    for root in [target, *outside]:
        for file in [root] if root.is_file() else project_files(root):
            _file_digest(digest, file)


class _Tally:
    """What a snapshot copies, checked against the limits as it goes; what it could not read."""

    def __init__(self, target: Path):
        self.target, self.files, self.copied, self.unreadable = target, 0, 0, 0

    def add(self, copied_bytes: int) -> None:
        self.files += 1
        self.copied += copied_bytes
        if self.files > MAX_FILES or self.copied > MAX_COPY_BYTES:
            raise InputError(
                f"{self.target} holds more than {MAX_FILES} files or {MAX_COPY_BYTES >> 20} MB (outside VCS, "
                "venv, cache and build folders) for the sandbox's snapshot: run covsweep on the project's own "
                "folder, or use --sandbox local"
            )


def _make_folder(path: Path) -> None:
    """A folder, and any missing above it, that the sandbox's user may list and enter, whatever the umask."""
    if not path.is_dir():
        _make_folder(path.parent)
        path.mkdir()
        path.chmod(0o755)


def _place_file(entry: os.DirEntry, dest: Path) -> int:
    """`entry` at dest, readable by everyone; the bytes copied."""
    info = entry.stat(follow_symlinks=False)
    if info.st_size >= LINK_MIN_BYTES and info.st_mode & stat.S_IROTH:
        try:
            os.link(entry.path, dest)
            return 0
        except OSError:
            pass  # another filesystem, or a file of another user (protected_hardlinks): copied
    shutil.copyfile(entry.path, dest)
    dest.chmod(0o755 if info.st_mode & 0o111 else 0o644)
    return info.st_size


def _copy_tree(source: Path, dest: Path, tally: _Tally) -> None:
    _make_folder(dest)
    for entry in _entries(source):
        to = dest / os.path.relpath(entry.path, source)
        if entry.is_symlink():
            # As a link: its target is the host's path, which is the copy's inside the sandbox.
            os.symlink(os.readlink(entry.path), to)
        elif entry.is_dir(follow_symlinks=False):
            _make_folder(to)
        else:
            try:
                tally.add(_place_file(entry, to))
            except PermissionError:
                tally.unreadable += 1  # not ours to read: the sandbox could not read it either


def _copies(snapshot: Snapshot, folder: Path) -> list[tuple[Path, Path]]:
    """Each folder the snapshot copies, with where its copy goes: the target, and --out when outside it."""
    pairs = [(snapshot.target, folder / "target")]
    output = snapshot.output
    if output and not output.is_relative_to(snapshot.target) and not snapshot.target.is_relative_to(output):
        pairs.append((output, folder / "output"))
    return pairs


def copy_of(snapshot: Snapshot, path: Path) -> Path | None:
    """Where the snapshot holds the host's `path`; None if it does not copy it."""
    for root, copy in _copies(snapshot, snapshot.folder):
        if path.is_relative_to(root):
            return copy / path.relative_to(root)
    return None


def readable_by_all(paths: list[Path]) -> bool:
    """Whether every folder and file of `paths` (those that exist) may be read by any user, as the
    sandbox's must: what it reads of the project, pruned folders aside."""
    wanted = {True: stat.S_IROTH | stat.S_IXOTH, False: stat.S_IROTH}  # is a folder: what it needs
    for root in (p for p in paths if p.exists()):
        if root.stat().st_mode & wanted[True] != wanted[True]:
            return False
        for entry in _entries(root):
            if entry.is_symlink():
                continue
            folder = entry.is_dir(follow_symlinks=False)
            if entry.stat(follow_symlinks=False).st_mode & wanted[folder] != wanted[folder]:
                return False
    return True


def plan_snapshot(target: Path, output: Path, folder: Path, *, reads_again: bool) -> Snapshot | None:
    """The run's snapshot, to be taken into `folder` on first use; None where the sandbox may read the
    target itself: everyone may read it, and the run reads it once only (measures, generates nothing),
    so that there is no view to keep consistent."""
    if reads_again or not readable_by_all([target, output]):
        return Snapshot(target=target, folder=folder, output=output)
    return None


def take_snapshot(snapshot: Snapshot) -> bool:
    """Copy the target into snapshot.folder unless it is there already: once per run and host, whichever
    thread or process asks first. True if it was taken now."""
    if snapshot.folder.is_dir():
        return False
    with _taking:
        if snapshot.folder.is_dir():
            return False
        tally = _Tally(snapshot.target)
        # Taken beside its place and renamed into it: a snapshot that is there is complete.
        fresh = snapshot.folder.with_name(f"{snapshot.folder.name}.taking-{uuid.uuid4().hex[:8]}")
        try:
            _make_folder(fresh)
            # Only the copies in it are mounted: no other user of this host reads a private project here.
            fresh.chmod(0o700)
            for root, copy in _copies(snapshot, fresh):
                if root.is_dir():
                    _copy_tree(root, copy, tally)
            try:
                fresh.rename(snapshot.folder)
            except OSError:
                if not snapshot.folder.is_dir():  # else another process took it first
                    raise
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    if tally.unreadable:
        get_logger("covsweep").warning(
            "%d files of %s are not readable by this user and were left out of the sandbox's snapshot",
            tally.unreadable,
            snapshot.target,
        )
    return True


def refresh_output(snapshot: Snapshot | None) -> None:
    """Copy covsweep's --out folder into the snapshot again: the run writes its tests there (and may
    remove some) after the snapshot was taken, and a whole-project measurement must see them."""
    if snapshot is None or snapshot.output is None or take_snapshot(snapshot):
        return
    copy = copy_of(snapshot, snapshot.output)
    if copy is None:
        return  # --out holds the target: nothing of the project's is copied apart from it
    with _taking:
        fresh = copy.with_name(f"{copy.name}.taking-{uuid.uuid4().hex[:8]}")
        stale = copy.with_name(f"{copy.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            if snapshot.output.is_dir():
                _copy_tree(snapshot.output, fresh, _Tally(snapshot.output))
            if copy.exists():
                copy.rename(stale)
            if fresh.exists():
                fresh.rename(copy)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
            shutil.rmtree(stale, ignore_errors=True)


def outermost(paths: list[Path]) -> list[Path]:
    """`paths` without those inside another of them."""
    paths = sorted({Path(p) for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for p in paths:
        if not any(p.is_relative_to(k) for k in kept):
            kept.append(p)
    return kept


def read_only_volumes(snapshot: Snapshot | None, paths: list[Path]) -> dict[str, dict[str, str]]:
    """docker-py volumes that show each of `paths` read-only at its own path: from the snapshot (taken
    here on its first use) where it holds a copy, else the path itself."""
    if snapshot:
        take_snapshot(snapshot)
    volumes = {}
    for path in outermost(paths):
        copy = copy_of(snapshot, path) if snapshot else None
        source = copy if copy and copy.exists() else path
        volumes[str(source)] = {"bind": str(path), "mode": "ro"}
    return volumes
