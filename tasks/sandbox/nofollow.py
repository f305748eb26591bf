"""The host's reads and writes in a workspace a sandbox could write: never through a link it planted there."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from pathlib import Path

from tasks.core.log import get_logger

FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def read_file(path: Path) -> bytes:
    """`path`'s bytes if it is a regular file itself; OSError for a link (the sandbox could aim one at any
    host file), a FIFO (opened without blocking) or anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise OSError(f"{path} is not a regular file")
        return file.read()


def drop_planted(folder: Path) -> list[str]:
    """Remove every link, FIFO, socket or device below `folder`, once no sandbox writes there: left, a
    later host step (often root) would write or read through it. The names removed, relative. A folder
    it cannot read or a path too long raises OSError: what is below it was not checked."""
    removed, pending = [], [""]
    while pending:  # no recursion: a sandbox can make a tree deeper than Python's stack
        relative = pending.pop()
        with os.scandir(folder / relative if relative else folder) as entries:
            for entry in entries:
                name = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                elif not entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed.append(name)
    return sorted(removed)


def remove_tree(folder: Path) -> bool:
    """Remove `folder` and all below it if it is there, never through a link, however deep a sandbox made
    it: shutil.rmtree recurses once per level and raises RecursionError (no OSError it could ignore) past
    about a thousand; `rm -rf` walks any depth. Never raises: it runs in cleanups. Whether it is gone."""
    try:
        removal = subprocess.run(
            ["rm", "-rf", "--", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        problem = removal.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["rm -rf failed"]
    except OSError as exc:
        problem = [f"rm -rf could not run: {exc}"]
    if not os.path.lexists(folder):
        return True
    get_logger("covsweep").warning("could not remove %s: %s", folder, problem[0][:300])
    return False


def write_new(within: Path, relative: str, text: str, mode: int = 0o644) -> None:
    """`text` as within/relative, whole or not at all, while a sandbox may still be writing below `within`
    (a folder it cannot replace): each folder on the way is opened without following a link, and the
    file is created under a name nobody can guess, then renamed over `relative` (a link there is replaced)."""
    *folders, name = Path(relative).parts
    fd = os.open(within, FOLDER)
    try:
        for part in folders:
            inner = os.open(part, FOLDER, dir_fd=fd)
            os.close(fd)
            fd = inner
        partial = f".{name}.{secrets.token_hex(8)}"
        out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
        try:
            with os.fdopen(out, "w") as file:
                file.write(text)
                os.fchmod(file.fileno(), mode)
            os.rename(partial, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError:
            os.unlink(partial, dir_fd=fd)
            raise
    finally:
        os.close(fd)
