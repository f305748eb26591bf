"""The flow `spec-to-production` end to end: real Prefect API, real Docker sandbox, real Pynguin."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from covsweep.settings import load
from flows.spec_to_production import spec_to_production
from tasks.write import MARKER
from tests.helpers import snapshot, write_project

pytestmark = pytest.mark.docker


def _without_outputs(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if not k.startswith(("tests/generated/", ".covsweep/"))}


@pytest.fixture(scope="module")
def plain_pytest(tmp_path_factory) -> Path:
    """A venv with pytest and nothing of covsweep: where a user's CI runs the generated tests."""
    venv = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheelhouse = load().cache_dir / "wheelhouse"
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(wheelhouse),
                    "pytest<9"], check=True)
    return venv / "bin" / "pytest"


@pytest.fixture(scope="module")
def example_run(prefect_api, sandbox_image, tmp_path_factory):
    import shutil

    from tests.conftest import EXAMPLE

    target = tmp_path_factory.mktemp("run") / "shop"
    shutil.copytree(EXAMPLE, target)
    before = snapshot(target)
    state = spec_to_production(target=str(target), timeout=120, return_state=True)
    return target, before, state


def test_coverage_rises_and_the_report_says_so(example_run):
    target, _, state = example_run
    report = state.result()
    assert state.is_completed()
    assert report.totals.line_after > report.totals.line_before
    assert report.totals.branch_after > report.totals.branch_before
    assert report.totals.failed == 0
    for module in report.modules:
        assert module.success, module
        assert module.coverage.line >= module.coverage_before.line
        assert module.status in {"reached_target", "improved", "unchanged"}
    improved = [m for m in report.modules if m.tests.accepted]
    assert improved, "no module got a test"
    for module in improved:
        assert module.generated_files
        text = (target / module.generated_files[0]).read_text()
        assert text.startswith(MARKER)
        assert module.validation.score == 1.0


def test_the_json_report_on_disk_matches_the_persisted_result(example_run):
    import json

    target, _, state = example_run
    on_disk = json.loads((target / ".covsweep" / "report.json").read_text())
    assert on_disk["schema"] == "covsweep.report/1"
    assert on_disk["run_id"] == str(state.state_details.flow_run_id)
    assert on_disk["totals"] == state.result().totals.model_dump()
    assert set(on_disk["modules"][0]) >= {"module", "status", "success", "generated_files", "coverage_before",
                                          "coverage", "tests", "execution_time", "timings", "generator",
                                          "model_used", "metadata", "validation", "error"}
    assert set(on_disk["modules"][0]["timings"]) == {"generate", "validate", "sandbox_start"}


def test_nothing_of_the_project_changes_but_the_generated_tests(example_run):
    target, before, _ = example_run
    assert _without_outputs(snapshot(target)) == _without_outputs(before)


def test_generated_tests_pass_under_plain_pytest_without_covsweep(example_run, plain_pytest):
    target, _, _ = example_run
    probe = subprocess.run([str(plain_pytest.parent / "python"), "-c", "import covsweep"], cwd=target,
                           capture_output=True)
    assert probe.returncode != 0, "the plain venv must not have covsweep"
    result = subprocess.run([str(plain_pytest), "-q", "-p", "no:cacheprovider", "tests/generated"], cwd=target,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_artifacts_are_published(example_run):
    import asyncio

    async def keys():
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["covsweep-summary", "covsweep-modules", "covsweep-progress"])))
            return {a.key for a in found}

    assert asyncio.run(keys()) == {"covsweep-summary", "covsweep-modules", "covsweep-progress"}


def test_a_second_run_adds_to_its_own_files(example_run, plain_pytest):
    from tasks.testfile import test_names

    target, _, _ = example_run
    generated = target / "tests" / "generated"
    earlier = {p.name: set(test_names(p.read_text())) for p in generated.glob("test_*.py")}
    report = spec_to_production(target=str(target), timeout=60, max_iterations=1, coverage_target=100)
    assert report.totals.line_before >= 90.0, "the earlier generated tests count in the baseline"
    for name, tests in earlier.items():
        assert tests <= set(test_names((generated / name).read_text())), name
    result = subprocess.run([str(plain_pytest), "-q", "-p", "no:cacheprovider", "tests"], cwd=target,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_users_file_of_the_same_name_is_never_touched(prefect_api, example):
    users = example / "tests" / "generated" / "test_shop_money.py"
    users.parent.mkdir(parents=True)
    users.write_text("def test_mine():\n    assert True\n")
    report = spec_to_production(target=str(example), timeout=60, max_iterations=1, modules=["shop/money.py"])
    assert users.read_text() == "def test_mine():\n    assert True\n"
    assert report.modules[0].generated_files == ["tests/generated/test_shop_money_covsweep.py"]


HOSTILE = {
    "hostile/__init__.py": "",
    "hostile/exits.py": "import sys\nsys.exit(3)\n",
    "hostile/loops.py": "while True:\n    pass\n",
    "hostile/forks.py": "import os\nwhile True:\n    os.fork()\n",
    "hostile/hog.py": "HOG = b'x' * (4 * 1024 ** 3)\n",
    "hostile/calls_out.py": "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)\n",
    "hostile/broken.py": "def f(:\n",
    "hostile/good.py": "def sign(x):\n    if x < 0:\n        return -1\n    return 1 if x else 0\n",
}


def test_hostile_modules_fail_alone_and_touch_nothing(prefect_api, sandbox_image, tmp_path):
    marker = Path(f"/tmp/covsweep-hostile-{uuid.uuid4().hex}")
    files = dict(HOSTILE)
    files["hostile/writes.py"] = f"open({str(marker)!r}, 'w').write('x')\n\ndef one():\n    return 1\n"
    target = write_project(tmp_path / "proj", files)
    before = snapshot(target)

    report = spec_to_production(target=str(target), timeout=45, max_iterations=1, reruns=2)

    modules = {m.module: m for m in report.modules}
    expected = {"hostile/exits.py": {"target"}, "hostile/loops.py": {"timeout"},
                "hostile/forks.py": {"timeout", "sandbox", "target"}, "hostile/hog.py": {"sandbox", "target"},
                "hostile/calls_out.py": {"target"}, "hostile/broken.py": {"target"}}
    for name, types in expected.items():
        assert modules[name].status == "failed", modules[name]
        assert modules[name].error.type in types, modules[name].error
    assert modules["hostile/good.py"].success and modules["hostile/good.py"].coverage.line == 100.0
    assert modules["hostile/writes.py"].success
    assert "sys.exit(3)" in modules["hostile/exits.py"].error.message
    assert not marker.exists(), "a module wrote to the host's /tmp"
    assert _without_outputs(snapshot(target)) == _without_outputs(before)


def test_an_unchanged_module_is_not_generated_again(prefect_api, example):
    params = dict(target=str(example), timeout=60, max_iterations=1, modules=["shop/cart.py"])
    first = spec_to_production(**params)
    assert first.modules[0].status != "skipped" and first.modules[0].tests.proposed > 0
    generated = sorted((example / "tests" / "generated").glob("*.py"))
    assert generated
    contents = [p.read_bytes() for p in generated]

    again = spec_to_production(**params)
    assert again.modules[0].status == "skipped" and again.modules[0].tests.proposed == 0
    assert [p.read_bytes() for p in generated] == contents

    # A run killed before it wrote anything: the next one writes what the finished module kept.
    for path in generated:
        path.unlink()
    resumed = spec_to_production(**params)
    assert resumed.modules[0].status == "skipped"
    assert [p.read_bytes() for p in generated] == contents

    cart = example / "src" / "shop" / "cart.py"
    cart.write_text(cart.read_text() + "\n\ndef empty(cart):\n    return cart.count() == 0\n")
    changed = spec_to_production(**params)
    assert changed.modules[0].status != "skipped"
