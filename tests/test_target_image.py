"""The per-target layer: a target's declared dependencies installed offline on top of the sandbox image."""

from __future__ import annotations

import time

import docker
import pytest
from docker.errors import BuildError, ImageNotFound

from tasks.core.errors import InputError
from tasks.core.models import SandboxConfig
from tasks.core.settings import load
from tasks.coverage.measurement import measure
from tasks.plan import sandbox_config
from tasks.project.discover import discover
from tasks.sandbox import images as image
from tasks.sandbox import runner as sandbox
from tasks.sandbox import target_image
from tasks.sandbox.probe import probe_import
from tasks.sandbox.requirements import read_declared
from tasks.sandbox.setup_py import SetupDeclarations
from tests.helpers import run_cli, snapshot, write_project

MISSING = "covsweep-no-such-package-4711"


# --- without Docker ---------------------------------------------------------------------------


def test_tag_depends_on_sandbox_and_requirements_not_their_order():
    tag = target_image.target_tag("sha256:a", ["six", "attrs>=22"])
    assert tag.startswith("covsweep-target:")
    assert tag == target_image.target_tag("sha256:a", ["attrs>=22", "six", "six"])
    assert tag != target_image.target_tag("sha256:b", ["six", "attrs>=22"])
    assert tag != target_image.target_tag("sha256:a", ["six", "attrs>=23"])


def test_missing_requirement_is_an_input_error_naming_it(tmp_path):
    # --no-index: pip's answer for a name it cannot find, without asking an index.
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"--no-index\n{MISSING}>=1\n")
    with pytest.raises(InputError, match=MISSING) as caught:
        image.fill_wheelhouse(tmp_path / "wheels", [reqs], what="deps of t cannot be installed", build_sdists=True)
    assert str(caught.value).startswith("deps of t cannot be installed: ")
    assert "\n" not in str(caught.value)


def test_sdist_only_requirement_is_built_into_a_wheel_on_the_host(tmp_path):
    # docopt is published as an sdist only: the fallback builds it (needs PyPI, as the layer does).
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("docopt==0.6.2\n")
    image.fill_wheelhouse(tmp_path / "wheels", [reqs], build_sdists=True)
    assert [p.name for p in (tmp_path / "wheels").glob("*.whl")] == ["docopt-0.6.2-py2.py3-none-any.whl"]


def test_wheels_compiled_on_this_host_are_recognised(tmp_path):
    for name in (
        "fast-1.0-cp311-cp311-linux_x86_64.whl",
        "pure-1.0-py3-none-any.whl",
        "np-2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    assert image._host_builds(tmp_path) == ["fast-1.0-cp311-cp311-linux_x86_64.whl"]


def test_sandbox_wheels_of_every_manylinux_flavour_are_found(tmp_path):
    # manylinux1 / 2_17 / 2_28 and abi3 wheels, as the sandbox's own coverage, pyyaml, libcst and psutil carry.
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("coverage==7.17.4\npyyaml==6.0.4\nlibcst==1.9.0\npsutil==7.2.2\n")
    image.fill_wheelhouse(tmp_path / "wheels", [reqs])
    assert {p.name.split("-")[0].lower() for p in (tmp_path / "wheels").glob("*.whl")} >= {
        "coverage",
        "pyyaml",
        "libcst",
        "psutil",
    }


def test_failures_are_reduced_to_the_pip_error_line_naming_the_requirement():
    stderr = (
        "ERROR: Ignored the following versions that require a different python version: 0.2 Requires-Python <3\n"
        "ERROR: Could not find a version that satisfies the requirement nope (from versions: none)\n"
        "ERROR: No matching distribution found for nope\n"
    )
    assert image.pip_failure(stderr) == "No matching distribution found for nope"
    stderr = (
        "ERROR: Cannot install pytest>=9 because these package versions have conflicting dependencies.\n\n"
        "The conflict is caused by:\n    The user requested pytest>=9\n"
        "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/...\n"
    )
    assert image.pip_failure(stderr).startswith("Cannot install pytest>=9 ")
    log = [{"stream": "Step 4/6 : RUN pip install\n"}, {"stream": "ERROR: No matching distribution found for x\n"}]
    assert (
        image.build_failure(BuildError("The command returned a non-zero code: 1", log))
        == "No matching distribution found for x"
    )


# --- with Docker ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deps_project(tmp_path_factory):
    """A flat-layout project whose module imports python-dateutil and whose test uses pytest-mock's fixture."""
    return write_project(
        tmp_path_factory.mktemp("deps") / "when",
        {
            "pyproject.toml": '[project]\nname = "when"\ndependencies = ["python-dateutil>=2.8"]\n',
            "requirements-test.txt": "pytest-mock>=3.10\n",
            "when/__init__.py": "",
            "when/parse.py": """
            from dateutil import parser


            def year_of(text):
                return parser.parse(text).year


            def is_leap(text):
                year = year_of(text)
                return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        """,
            "tests/test_parse.py": """
            from when import parse


            def test_year_of():
                assert parse.year_of("29 February 2024") == 2024


            def test_is_leap(mocker):
                spy = mocker.spy(parse, "year_of")
                assert parse.is_leap("2000-01-01") and not parse.is_leap("1900-06-01")
                assert spy.call_count == 2
        """,
        },
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return load().model_copy(update={"cache_dir": tmp_path_factory.mktemp("cache")})


@pytest.fixture(scope="module")
def built(sandbox_image, deps_project, settings):
    """The target image, built from scratch here (an earlier session's copy is removed first)."""
    client = docker.from_env()
    expected = target_image.target_tag(client.images.get(sandbox_image).id, read_declared(deps_project).requirements)
    _remove(client, expected)
    started = time.monotonic()
    tag = target_image.ensure_target_image(settings, deps_project)
    yield tag, time.monotonic() - started
    _remove(client, tag)


def _remove(client, tag):
    try:
        client.images.remove(tag, force=True)
    except ImageNotFound:
        pass


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_layer_is_built_on_the_sandbox_and_its_wheelhouse_dropped(built, sandbox_image, settings):
    tag, seconds = built
    assert tag.startswith("covsweep-target:") and tag != sandbox_image
    client = docker.from_env()
    parents = {layer["Id"] for layer in client.api.history(tag)}
    assert client.images.get(sandbox_image).id in parents
    assert not any((settings.cache_dir / "wheelhouse-targets").iterdir())
    assert seconds < 240


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_baseline_runs_the_projects_tests_against_its_dependencies(built, deps_project, tmp_path):
    project = discover(deps_project)
    measured = measure(
        SandboxConfig(kind="docker", image=built[0]), project, project.test_paths, tmp_path / "ws", timeout=120
    )
    assert measured.failed_tests == {}, measured.output
    assert "2 passed" in measured.output
    assert measured.coverage.files["when/parse.py"].percentages().line == 100.0


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_pynguin_imports_the_dependencies_and_keeps_its_own_packages_first(built, deps_project, tmp_path):
    script = (
        "/opt/pynguin/bin/python -c 'import dateutil, pynguin, pytest; print(dateutil.__file__, pytest.__file__)'"
        " && $PY -c 'import coverage, pytest_mock; print(coverage.__version__)'"
    )
    result = sandbox.run(
        SandboxConfig(kind="docker", image=built[0]),
        script,
        workspace=sandbox.prepare_workspace(tmp_path / "ws"),
        read_only=[deps_project],
        timeout=60,
    )
    assert result.ok, result.output
    dateutil_file, pytest_file, coverage_version = result.output.split()
    assert dateutil_file.startswith("/opt/runner/") and pytest_file.startswith("/opt/pynguin/")
    assert coverage_version.startswith("7.17.")


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_second_call_reuses_the_image(built, deps_project, settings, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the target image was rebuilt")

    monkeypatch.setattr(target_image, "fill_wheelhouse", forbidden)
    monkeypatch.setattr(target_image, "build_image", forbidden)
    client = docker.from_env()
    before = client.images.get(built[0]).id
    started = time.monotonic()
    assert target_image.ensure_target_image(settings, deps_project) == built[0]
    assert time.monotonic() - started < 10
    assert client.images.get(built[0]).id == before


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_plan_uses_the_layer_only_for_a_project_that_declares_dependencies(
    built, deps_project, sandbox_image, settings, tmp_path
):
    assert sandbox_config("docker", settings, discover(deps_project)).image == built[0]
    plain = write_project(tmp_path / "plain", {"plain.py": "X = 1\n", "pyproject.toml": '[project]\nname = "plain"\n'})
    assert sandbox_config("docker", settings, discover(plain)).image == sandbox_image
    assert sandbox_config("local", settings, discover(deps_project)).kind == "local"


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_requirement_that_does_not_exist_is_an_input_error_naming_it(sandbox_image, settings, tmp_path):
    project = write_project(tmp_path / "bad", {"bad.py": "X = 1\n", "requirements.txt": f"six\n{MISSING}\n"})
    with pytest.raises(InputError, match=MISSING) as caught:
        target_image.ensure_target_image(settings, project)
    assert str(caught.value).startswith(f"the dependencies of {project} cannot be installed: ")
    assert "\n" not in str(caught.value)


@pytest.mark.docker
@pytest.mark.server
@pytest.mark.timeout(300)
def test_cli_refuses_a_target_whose_requirement_does_not_exist_with_exit_2(sandbox_image, tmp_path):
    project = write_project(tmp_path / "bad", {"bad.py": "X = 1\n", "requirements.txt": f"{MISSING}==1.0\n"})
    before = snapshot(project)
    result = run_cli("run", str(project), "--generator", "none", timeout=240)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"covsweep: error: the dependencies of {project} cannot be installed: "
        f"No matching distribution found for {MISSING}==1.0"
    ]
    assert snapshot(project) == before


# --- setup.py (finding 5) ---------------------------------------------------------------------

SIXER = {
    "sixer.py": """
    import six


    def kind(value):
        if isinstance(value, six.string_types):
            return "text"
        return "other"
""",
    "tests/test_sixer.py": """
    from sixer import kind


    def test_text():
        assert kind("a") == "text"
""",
}


@pytest.fixture
def six_layer(sandbox_image):
    """The tag a target that needs only `six` gets; removed afterwards, so each test builds it."""
    client = docker.from_env()
    tag = target_image.target_tag(client.images.get(sandbox_image).id, ["six"])
    _remove(client, tag)
    yield tag
    _remove(client, tag)


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_setup_py_only_dependency_reaches_the_sandbox(six_layer, sandbox_image, settings, tmp_path):
    project_dir = write_project(
        tmp_path / "sixer",
        {
            "setup.py": "from setuptools import setup\nsetup(name='sixer', py_modules=['sixer'], install_requires=['six'])\n"
        }
        | SIXER,
    )
    project = discover(project_dir)
    config = sandbox_config("docker", settings, project)
    module = next(m for m in project.modules if m.dotted == "sixer")
    probe_import(config, project, module, sandbox.prepare_workspace(tmp_path / "probe"), timeout=60)
    assert config.image == six_layer
    measured = measure(config, project, project.test_paths, tmp_path / "ws", timeout=120)
    assert measured.failed_tests == {}, measured.output
    assert "1 passed" in measured.output
    sixer = measured.coverage.files["sixer.py"]
    assert sorted(set(sixer.statements) - set(sixer.executed_lines)) == [7]


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_setup_py_that_is_not_literal_is_read_by_the_hook_in_the_sandbox(sandbox_image, settings, tmp_path):
    project_dir = write_project(
        tmp_path / "sixer",
        {
            "setup.py": """
            from setuptools import setup

            setup(
                name="sixer",
                py_modules=["sixer"],
                install_requires=open("deps.in").read().split(),
                extras_require={"test": ["pytest-mock; python_version >= '3.8'"], "docs": ["sphinx"]},
                tests_require=["freezegun"],
            )
        """,
            "deps.in": "six>=1.16\n",
        }
        | SIXER,
    )
    before = snapshot(project_dir)
    declared = target_image.setup_py_metadata(
        SandboxConfig(kind="docker", image=sandbox_image), project_dir, tmp_path / "hook"
    )
    assert declared == SetupDeclarations(
        name="sixer",
        install_requires=["six>=1.16"],
        extras={"test": ["freezegun", 'pytest-mock; python_version >= "3.8"'], "docs": ["sphinx"]},
    )
    assert snapshot(project_dir) == before


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_setup_py_that_neither_read_works_for_is_a_warning(sandbox_image, settings, tmp_path, caplog):
    project_dir = write_project(
        tmp_path / "numeric",
        {
            "setup.py": """
            import numpy
            from setuptools import setup

            setup(name="numeric", install_requires=numpy.get_include() and ["six"])
        """,
            "numeric.py": "X = 1\n",
        },
    )
    prepared = target_image.prepare_target_image(settings, project_dir)
    assert prepared.tag == sandbox_image
    assert prepared.warnings == [
        f"the dependencies declared in {project_dir / 'setup.py'} could not be read "
        "(install_requires is `numpy.get_include() and ['six']`; the metadata hook failed: "
        "ModuleNotFoundError: No module named 'numpy'): they are not installed in the sandbox, "
        "and modules that import them will fail"
    ]
    assert prepared.warnings[0] in caplog.text
    assert list((settings.cache_dir / "setup-py").iterdir()) == []  # the hook's scratch folder is gone
