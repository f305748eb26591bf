"""The host in a sandbox-writable workspace: no read or write through what the sandbox planted there."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tasks.sandbox.nofollow import drop_planted, read_file, remove_tree, write_new
from tests.helpers import deep_tree


def test_a_regular_file_is_read(tmp_path):
    (tmp_path / "data").write_bytes(b"\x00measured")
    assert read_file(tmp_path / "data") == b"\x00measured"


def test_a_link_is_refused_not_followed(tmp_path):
    (tmp_path / "secret").write_text("the host's")
    (tmp_path / "data").symlink_to(tmp_path / "secret")
    with pytest.raises(OSError):
        read_file(tmp_path / "data")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "data")
    with pytest.raises(OSError, match="not a regular file"):
        read_file(tmp_path / "data")


def test_a_missing_file_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_file(tmp_path / "data")


def test_links_fifos_and_sockets_below_a_folder_are_dropped_and_files_kept(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "kept.py").write_text("x")
    (tmp_path / "secret").write_text("the host's")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "secret")
    (tmp_path / "a" / "b" / "to-a-folder").symlink_to(tmp_path / "a")
    os.mkfifo(tmp_path / "a" / "b" / "pipe")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        removed = drop_planted(tmp_path)
    assert sorted(removed) == ["a/b/pipe", "a/b/to-a-folder", "a/link", "sock"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/b", "a/b/kept.py", "secret"]
    assert (tmp_path / "secret").read_text() == "the host's"


def test_write_new_writes_the_whole_file_and_replaces_a_link_at_its_name_without_following_it(tmp_path):
    (tmp_path / "watch").mkdir()
    (tmp_path / "secret").write_text("the host's")
    (tmp_path / "watch" / "stop").symlink_to(tmp_path / "secret")
    write_new(tmp_path, "watch/stop", "21\n")
    assert not (tmp_path / "watch" / "stop").is_symlink()
    assert (tmp_path / "watch" / "stop").read_text() == "21\n"
    assert (tmp_path / "secret").read_text() == "the host's"
    assert sorted(p.name for p in (tmp_path / "watch").iterdir()) == ["stop"]


def test_write_new_is_not_blocked_by_a_file_planted_where_a_partial_one_used_to_go(tmp_path):
    (tmp_path / ".stop.partial").symlink_to(tmp_path / "elsewhere")
    write_new(tmp_path, "stop", "21\n")
    assert (tmp_path / "stop").read_text() == "21\n" and not (tmp_path / "elsewhere").exists()


def test_write_new_refuses_a_folder_on_the_way_that_is_a_link(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "watch").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        write_new(tmp_path, "watch/stop", "21\n")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_tree_deeper_than_pythons_stack_is_checked_to_the_bottom(tmp_path):
    deep = tmp_path
    for _ in range(1200):  # a path of 2400 characters: below PATH_MAX, beyond the recursion limit
        deep = deep / "d"
        deep.mkdir()
    (deep / "link").symlink_to("/")
    try:
        assert drop_planted(tmp_path) == ["d/" * 1200 + "link"]
    finally:
        subprocess.run(["rm", "-rf", str(tmp_path / "d")], check=True)  # Python's rmtree recurses too deep


def test_a_tree_deeper_than_the_stack_goes_whole_and_nothing_it_links_to_goes(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept").write_text("the host's")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    deep_tree(workspace, 2500, outside)  # shutil.rmtree of Python 3.11 raises RecursionError on it
    (workspace / "top-link").symlink_to(outside)
    try:
        assert remove_tree(workspace)
        assert remove_tree(workspace)  # gone already: nothing to do

        assert not workspace.exists()
        assert (outside / "kept").read_text() == "the host's"
    finally:
        subprocess.run(["rm", "-rf", str(workspace)], check=False)  # pytest's own cleanup would recurse


def test_a_tree_that_cannot_be_removed_is_logged_not_raised(tmp_path, monkeypatch, caplog):
    (tmp_path / "workspace" / "module").mkdir(parents=True)
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))

    assert remove_tree(tmp_path / "workspace") is False

    assert (tmp_path / "workspace" / "module").is_dir()
    assert f"could not remove {tmp_path / 'workspace'}: rm -rf could not run" in caplog.text
