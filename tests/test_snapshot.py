"""The sandbox's read-only snapshot of the target: a private project (mode 0700, files 0600) is
measured like a readable one, and the run sees the code as it was when the run started."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from tests.fake_llm import API_KEY, code_answer
from tests.helpers import SHOP_COUPON_TESTS, write_project

DISCOUNT_TESTS = (
    """\
from shop.discounts import best_price, coupon_percent, percent_off, threshold_discount


def test_percent_off():
    assert percent_off(1000, 10) == 900


def test_threshold():
    assert threshold_discount(20_000) == 18_000
    assert threshold_discount(5) == 5


"""
    + SHOP_COUPON_TESTS
)


def make_private(root: Path) -> Path:
    """What a umask of 077 makes: folders 0700, files 0600."""
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o700)
        for name in files:
            os.chmod(Path(folder) / name, 0o600)
    return root


@pytest.fixture
def private_example(tmp_path) -> Path:
    """The example project in a folder made by tempfile.mkdtemp, as private as umask 077 makes it."""
    target = Path(tempfile.mkdtemp(dir=tmp_path, prefix="private-"))
    shutil.copytree(EXAMPLE, target, dirs_exist_ok=True)
    return make_private(target)


def coverage_of(report: dict) -> dict:
    return {m["module"]: (m["status"], m["coverage_before"], m["coverage"]) for m in report["modules"]}


def independent_line_coverage(target: Path, module: str, scratch: Path) -> float:
    """pytest under coverage on the host over the tests the run left in the target: the module's line %."""
    env = {**os.environ, "COVERAGE_FILE": str(scratch / ".coverage"), "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(
        [sys.executable, "-m", "coverage", "run", "--source=src", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=target,
        env=env,
        check=True,
        capture_output=True,
    )
    out = scratch / "coverage.json"
    subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", str(out)], cwd=target, env=env, check=True)
    summary = json.loads(out.read_text())["files"][f"src/{module}"]["summary"]
    return round(100.0 * summary["covered_lines"] / summary["num_statements"], 2)


# -- without Docker ----------------------------------------------------------------------------------


def _snapshot_of(target: Path, tmp_path: Path, output: Path | None = None):
    from tasks.core.models import Snapshot

    return Snapshot(target=target, folder=tmp_path / "run" / "snapshot", output=output)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def private_project(tmp_path) -> Path:
    target = tmp_path / "project"
    files = {
        "src/pkg/__init__.py": "",
        "src/pkg/mod.py": "VALUE = 1\n",
        "tests/test_mod.py": "def test_mod():\n    pass\n",
        "run.sh": "#!/bin/sh\n",
        ".coveragerc": "[run]\n",
        ".git/config": "[core]\n",
        ".venv/pyvenv.cfg": "home = /usr\n",
        "venv/pyvenv.cfg": "home = /usr\n",
        "src/pkg/__pycache__/mod.cpython-311.pyc": "",
        "build/lib/pkg/mod.py": "",
        "pkg.egg-info/PKG-INFO": "",
    }
    for name, text in files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)
    (target / "src" / "pkg" / "alias.py").symlink_to("mod.py")
    make_private(target)
    (target / "run.sh").chmod(0o700)
    return target


def test_a_snapshot_is_readable_by_everyone_and_leaves_out_what_tests_do_not_read(private_project, tmp_path):
    from tasks.sandbox.snapshot import copy_of, take_snapshot

    snapshot = _snapshot_of(private_project, tmp_path)
    assert take_snapshot(snapshot) is True
    copy = copy_of(snapshot, private_project)
    assert copy == snapshot.folder / "target"
    files = sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if not p.is_dir())
    assert files == [
        ".coveragerc",
        "run.sh",
        "src/pkg/__init__.py",
        "src/pkg/alias.py",
        "src/pkg/mod.py",
        "tests/test_mod.py",
    ]
    assert (copy / "src/pkg/alias.py").is_symlink() and (copy / "src/pkg/alias.py").read_text() == "VALUE = 1\n"
    assert {_mode(p) for p in [copy, *copy.rglob("*")] if p.is_dir()} == {0o755}
    assert _mode(copy / "src/pkg/mod.py") == 0o644 and _mode(copy / "run.sh") == 0o755
    assert _mode(snapshot.folder) == 0o700  # what it holds is mounted, not the folder itself
    # The target itself is left as it was.
    assert _mode(private_project) == 0o700 and _mode(private_project / "src/pkg/mod.py") == 0o600


def test_edits_made_after_the_snapshot_do_not_show_in_it(private_project, tmp_path):
    from tasks.sandbox.snapshot import copy_of, take_snapshot

    snapshot = _snapshot_of(private_project, tmp_path)
    take_snapshot(snapshot)
    module = private_project / "src/pkg/mod.py"
    with module.open("w") as in_place:  # as an editor that saves in place does
        in_place.write("VALUE = 2\n")
    (private_project / "src/pkg/new.py").write_text("")
    assert take_snapshot(snapshot) is False  # once per run
    copy = copy_of(snapshot, private_project)
    assert (copy / "src/pkg/mod.py").read_text() == "VALUE = 1\n"
    assert not (copy / "src/pkg/new.py").exists()


def test_only_large_files_everyone_may_read_are_linked(tmp_path, monkeypatch):
    from tasks.sandbox import snapshot as snapshots

    monkeypatch.setattr(snapshots, "LINK_MIN_BYTES", 1000)
    target = tmp_path / "project"
    target.mkdir()
    for name, size, mode in [
        ("big_shared.bin", 1000, 0o644),
        ("big_private.bin", 1000, 0o600),
        ("small.py", 10, 0o644),
    ]:
        (target / name).write_bytes(b"x" * size)
        (target / name).chmod(mode)
    snapshot = _snapshot_of(target, tmp_path)
    snapshots.take_snapshot(snapshot)
    copy = snapshots.copy_of(snapshot, target)
    linked = {p.name for p in copy.iterdir() if p.stat().st_ino == (target / p.name).stat().st_ino}
    assert linked == {"big_shared.bin"}
    assert _mode(copy / "big_private.bin") == 0o644


def test_one_snapshot_for_many_threads(private_project, tmp_path):
    from tasks.sandbox.snapshot import take_snapshot
    from tests.helpers import in_threads

    snapshot = _snapshot_of(private_project, tmp_path)
    assert sorted(in_threads(lambda: take_snapshot(snapshot), 6)) == [False] * 5 + [True]
    assert [p.name for p in snapshot.folder.parent.iterdir()] == ["snapshot"]  # no half-taken copy left


def test_a_folder_too_large_to_snapshot_is_refused_with_what_to_do(private_project, tmp_path, monkeypatch):
    from tasks.core.errors import InputError
    from tasks.sandbox import snapshot as snapshots

    monkeypatch.setattr(snapshots, "MAX_FILES", 3)
    snapshot = _snapshot_of(private_project, tmp_path)
    with pytest.raises(InputError, match=r"more than 3 files .* --sandbox local"):
        snapshots.take_snapshot(snapshot)
    assert list(snapshot.folder.parent.iterdir()) == []


@pytest.mark.parametrize("inside", [True, False])
def test_the_output_folder_is_copied_again_for_each_measurement(private_project, tmp_path, inside):
    from tasks.sandbox.snapshot import copy_of, read_only_volumes, refresh_output

    output = private_project / "tests" / "generated" if inside else tmp_path / "out"
    snapshot = _snapshot_of(private_project, tmp_path, output)
    volumes = read_only_volumes(snapshot, [private_project])  # the first sandbox run takes it: no --out yet
    assert volumes == {str(snapshot.folder / "target"): {"bind": str(private_project), "mode": "ro"}}
    output.mkdir(mode=0o700)
    (output / "test_a.py").write_text("def test_a():\n    pass\n")
    (output / "test_a.py").chmod(0o600)
    refresh_output(snapshot)
    copy = copy_of(snapshot, output)
    assert copy.is_relative_to(snapshot.folder) and (copy / "test_a.py").read_text().startswith("def test_a")
    assert _mode(copy) == 0o755 and _mode(copy / "test_a.py") == 0o644
    (output / "test_a.py").unlink()
    (output / "test_b.py").write_text("")
    refresh_output(snapshot)
    assert sorted(p.name for p in copy.iterdir()) == ["test_b.py"]
    # Whole-project measurements mount --out too when it is outside the target: from the snapshot as well.
    volumes = read_only_volumes(snapshot, [private_project, output, private_project / "tests"])
    assert {v["bind"]: k for k, v in volumes.items()} == {
        str(private_project): str(snapshot.folder / "target"),
        **({} if inside else {str(output): str(copy)}),
    }


def test_without_a_snapshot_paths_are_mounted_as_they_are(tmp_path):
    from tasks.sandbox.snapshot import read_only_volumes

    volumes = read_only_volumes(None, [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "c"])
    assert volumes == {str(p): {"bind": str(p), "mode": "ro"} for p in (tmp_path / "a", tmp_path / "c")}


def test_only_a_measuring_run_of_a_readable_target_goes_without_a_snapshot(tmp_path):
    from tasks.sandbox.snapshot import plan_snapshot

    target = tmp_path / "project"
    shutil.copytree(EXAMPLE, target)
    for folder, _, files in os.walk(target):  # whatever the checkout's umask made of it
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    output = target / "tests" / "generated"
    folder = tmp_path / "run" / "snapshot"
    assert plan_snapshot(target, output, folder, reads_again=False) is None
    assert plan_snapshot(target, output, folder, reads_again=True).folder == folder  # a generating run
    (target / "src" / "shop" / "money.py").chmod(0o600)
    assert plan_snapshot(target, output, folder, reads_again=False).target == target
    (target / "src" / "shop" / "money.py").chmod(0o644)
    output.mkdir()
    output.chmod(0o700)
    assert plan_snapshot(target, output, folder, reads_again=False).output == output
    output.chmod(0o755)
    elsewhere = tmp_path / "private-out"
    elsewhere.mkdir()
    elsewhere.chmod(0o700)
    assert plan_snapshot(target, elsewhere, folder, reads_again=False) is not None
    assert plan_snapshot(target, tmp_path / "no-out-yet", folder, reads_again=False) is None


def test_a_runs_snapshot_is_not_part_of_its_settings(tmp_path):
    from tasks.core.models import SandboxConfig
    from tasks.core.options import RunOptions
    from tasks.core.plan import Plan
    from tasks.project.discover import discover

    project = discover(EXAMPLE)
    plans = [
        Plan(
            run_id=run,
            project=project,
            generator="pynguin",
            sandbox=SandboxConfig(image="i", snapshot=_snapshot_of(project.target, tmp_path / run)),
            out=tmp_path / "out",
            report=tmp_path / "report.json",
            workspace=tmp_path / run,
            options=RunOptions(target=str(EXAMPLE)),
        )
        for run in ("one", "two")
    ]
    assert plans[0].fingerprint_settings() == plans[1].fingerprint_settings()


# -- with Docker ----------------------------------------------------------------------------------------


@pytest.mark.docker
def test_a_private_target_is_measured_like_a_readable_one(prefect_api, sandbox_image, example, private_example):
    from flows.spec_to_production import spec_to_production

    assert private_example.stat().st_mode & 0o777 == 0o700
    reports = {
        name: spec_to_production(target=str(target), generator="none").model_dump(mode="json")
        for name, target in (("readable", example), ("private", private_example))
    }
    assert "No data was collected" not in json.dumps(reports["private"])
    assert coverage_of(reports["private"]) == coverage_of(reports["readable"])
    assert reports["private"]["totals"]["line_before"] == reports["readable"]["totals"]["line_before"] > 0
    assert reports["private"]["totals"]["failed"] == 0


@pytest.mark.docker
def test_tests_generated_for_a_private_target_count_in_its_final_measurement(
    prefect_api, sandbox_image, private_example, fake_llm, monkeypatch, tmp_path
):
    from flows.spec_to_production import spec_to_production

    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)
    fake_llm.script(code_answer(DISCOUNT_TESTS))
    report = spec_to_production(
        target=str(private_example),
        modules=["shop/discounts.py"],
        generator="llm",
        models="m/one",
        llm_base_url=fake_llm.base_url,
        timeout=120,
        mutation="off",  # one answer is scripted
    )
    [module] = report.modules
    assert module.success and module.tests.accepted >= 3, module
    assert module.coverage.line > module.coverage_before.line
    # The final measurement saw the file written into the real target after the snapshot was taken.
    assert (private_example / module.generated_files[0]).is_file()
    assert module.coverage.line == independent_line_coverage(private_example, "shop/discounts.py", tmp_path)


@pytest.mark.docker
def test_the_sandbox_reads_a_private_target_at_its_path_and_cannot_write_there(
    docker_config, private_project, tmp_path
):
    from tasks.core.models import SandboxConfig
    from tasks.sandbox import runner as sandbox

    config = SandboxConfig(kind="docker", image=docker_config.image, snapshot=_snapshot_of(private_project, tmp_path))
    module = private_project / "src/pkg/mod.py"
    result = sandbox.run(
        config,
        f"id -u; cat {module}; touch {module} || echo refused; awk '$2 == \"{private_project}\" {{print $4}}' /proc/mounts",
        workspace=sandbox.prepare_workspace(tmp_path / "ws"),
        read_only=[private_project],
        timeout=60,
    )
    assert result.output.split()[:3] == ["1000", "VALUE", "="] and "refused" in result.output, result.output
    assert result.output.split()[-1].startswith("ro,"), result.output  # mounted read-only


def _digest_of(target: Path) -> str:
    from tasks.sandbox.snapshot import content_digest

    digest = hashlib.sha256()
    content_digest(digest, target, [])
    return digest.hexdigest()


def test_a_targets_digest_follows_its_files_and_links_whatever_their_names(tmp_path):
    target = write_project(tmp_path / "p", {"calc.py": "X = 1\n"})
    odd = os.fsdecode(b"data-\xff")  # neither name is UTF-8: a filesystem allows it, and a run must not fail
    (target / odd).write_text("one")
    os.symlink(os.fsdecode(b"calc-\xfe.py"), target / "link.py")
    first = _digest_of(target)

    assert _digest_of(target) == first
    (target / odd).write_text("two")
    assert _digest_of(target) != first
    (target / odd).write_text("one")
    (target / "same.py").write_text("X = 1\n")
    os.symlink("calc.py", target / "other.py")
    pointing_at_calc = _digest_of(target)
    (target / "other.py").unlink()
    os.symlink("same.py", target / "other.py")  # the same content through it: the link's target alone differs
    assert _digest_of(target) != pointing_at_calc
