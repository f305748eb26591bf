"""The OpenHands generator: unit checks, then real Docker with a stand-in image (same command and
environment as OpenHands, one chat-completions request to the scripted server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import docker
import pytest
from docker.errors import NotFound
from pydantic import SecretStr

from tests.conftest import REPO
from tests.fake_llm import API_KEY, answer, code_answer, prose, unauthorized
from tests.helpers import SHOP_COUPON_TESTS, assert_key_left_nowhere, snapshot

STANDIN = Path(__file__).resolve().parent.parent / "deployments" / "openhands-standin"

DISCOUNT_TESTS = """\
import pytest

from shop.discounts import best_price, coupon_percent, percent_off, threshold_discount


def test_percent_off():
    assert percent_off(1000, 10) == 900
    with pytest.raises(ValueError):
        percent_off(1, 101)


def test_threshold():
    assert threshold_discount(20_000) == 18_000
    assert threshold_discount(5) == 5


def test_a_wrong_expectation():
    assert percent_off(100, 50) == 7
"""

# A second file, as an agent may leave: its test_percent_off clashes with the first file's.
MORE_DISCOUNT_TESTS = (
    """\
from shop.discounts import best_price, coupon_percent, percent_off


def test_percent_off():
    assert percent_off(200, 50) == 100


"""
    + SHOP_COUPON_TESTS
)


# -- without Docker -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, base_url, expected",
    [
        (
            "deepseek/deepseek-chat-v3.1:free",
            "https://openrouter.ai/api/v1",
            "openrouter/deepseek/deepseek-chat-v3.1:free",
        ),
        (
            "openrouter/deepseek/deepseek-chat-v3.1:free",
            "https://openrouter.ai/api/v1",
            "openrouter/deepseek/deepseek-chat-v3.1:free",
        ),
        ("mistral/mistral-small:free", "https://openrouter.ai/api/v1", "openrouter/mistral/mistral-small:free"),
        ("gpt-4o-mini", "https://api.openai.com/v1", "openai/gpt-4o-mini"),
        ("openai/gpt-4o-mini", "https://api.openai.com/v1", "openai/gpt-4o-mini"),
        ("meta-llama/Llama-3.1-8B-Instruct", "http://gpu-box:8000/v1", "openai/meta-llama/Llama-3.1-8B-Instruct"),
        (
            "hosted_vllm/meta-llama/Llama-3.1-8B-Instruct",
            "http://gpu-box:8000/v1",
            "hosted_vllm/meta-llama/Llama-3.1-8B-Instruct",
        ),
        ("ollama/qwen2.5-coder", "http://localhost:11434", "ollama/qwen2.5-coder"),
        ("qwen2.5-coder", "http://localhost:11434/v1", "openai/qwen2.5-coder"),
    ],
)
def test_the_provider_prefix_is_added_when_missing(model, base_url, expected):
    from tasks.generators.openhands import litellm_model

    assert litellm_model(model, base_url) == expected


def test_the_setup_comes_from_the_environment_and_the_llm_chain(monkeypatch):
    from tasks.core.settings import load
    from tasks.generators.openhands import OpenHandsSetup
    from tasks.llm.config import LLMConfig

    for name in ("OPENHANDS_IMAGE", "OPENHANDS_MODEL", "OPENHANDS_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    llm = LLMConfig(api_key=SecretStr(API_KEY), models=["deepseek/deepseek-chat-v3.1:free", "b/c"])
    setup = OpenHandsSetup.resolve(load(), llm)
    assert setup.model == "openrouter/deepseek/deepseek-chat-v3.1:free"
    monkeypatch.setenv("OPENHANDS_IMAGE", "my/openhands:1")
    monkeypatch.setenv("OPENHANDS_MODEL", "qwen/qwen3-coder")
    monkeypatch.setenv("OPENHANDS_TIMEOUT", "42")
    setup = OpenHandsSetup.resolve(load(), llm)
    assert (setup.image, setup.model, setup.timeout_s) == ("my/openhands:1", "openrouter/qwen/qwen3-coder", 42.0)
    assert API_KEY not in repr(setup) + setup.model_dump_json()


@pytest.mark.parametrize(
    "output, exit_code, expected",
    [
        (
            "step 1\nlitellm.AuthenticationError: AuthenticationError: OpenrouterException - No auth",
            1,
            "authentication",
        ),
        ("litellm.RateLimitError: RateLimitError: free-models-per-min\nAgentState.ERROR", 0, "rate_limit"),
        ("litellm.APIConnectionError: Connection refused", 1, "connection"),
        ("Traceback (most recent call last):\nKeyError: 'x'", 1, "sandbox"),
        ("AgentState.FINISHED", 0, "invalid_response"),
    ],
)
def test_a_run_without_tests_says_why(output, exit_code, expected):
    from tasks.generators.openhands import ContainerRun, failure

    error = failure(ContainerRun(exit_code=exit_code, output=output), _setup(None, "unused"), 60)
    assert error.info.type == expected, error.info


def test_openhands_needs_an_api_key():
    from tasks.checks import resolve_generator
    from tasks.core.errors import InputError

    with pytest.raises(InputError, match="COVSWEEP_LLM_API_KEY.*OPENROUTER_API_KEY"):
        resolve_generator("openhands", has_key=False)
    assert resolve_generator("openhands", has_key=True) == "openhands"


def test_only_the_tests_openhands_added_are_collected(tmp_path):
    from tasks.generators.openhands import collect_tests, copy_target

    target = tmp_path / "target"
    (target / "tests").mkdir(parents=True)
    (target / "pkg").mkdir()
    (target / "pkg" / "mod.py").write_text("X = 1\n")
    (target / "tests" / "test_old.py").write_text("def test_old():\n    pass\n")
    (target / "tests" / "test_same.py").write_text("def test_same():\n    pass\n")
    (target / ".git").mkdir()
    (target / ".git" / "test_git.py").write_text("def test_git():\n    pass\n")
    copy = tmp_path / "copy"
    copy_target(target, copy)
    assert not (copy / ".git").exists() and (copy / "pkg" / "mod.py").read_text() == "X = 1\n"

    (copy / "tests" / "test_old.py").write_text("def test_old():\n    pass\n\n\ndef test_added():\n    pass\n")
    (copy / "tests" / "test_new.py").write_text("class TestNew:\n    def test_a(self):\n        pass\n")
    (copy / "tests" / "test_broken.py").write_text("def test_(:\n")
    (copy / "tests" / "helper.py").write_text("def test_not_a_test_file():\n    pass\n")
    (copy / "tests" / "test_link.py").symlink_to(target / "tests" / "test_old.py")
    found = collect_tests(copy, target)
    assert sorted(names for _, names in found) == [{"TestNew.test_a"}, {"test_added"}]


def pkg_mod(tmp_path: Path, source: str):
    """A target whose one module, pkg/mod.py, is `source`: its ProjectRef and Module."""
    from tasks.core.models import Module, ProjectRef

    target = tmp_path / "target"
    (target / "pkg").mkdir(parents=True)
    (target / "pkg" / "mod.py").write_text(source)
    project = ProjectRef(target=target, import_root=target, test_paths=[])
    return project, Module(path="pkg/mod.py", dotted="pkg.mod", file=target / "pkg" / "mod.py", sha256="0")


def test_the_task_lists_surviving_mutants_after_the_first_round(tmp_path):
    from tasks.core.models import FileCoverage, Mutant
    from tasks.generators.openhands import task_text

    project, module = pkg_mod(tmp_path, "def f(a, b):\n    return a < b\n")
    coverage = FileCoverage(statements=[1, 2], executed_lines=[1, 2])
    survivor = Mutant(
        name="pkg.mod.x_f__mutmut_1",
        file="pkg/mod.py",
        line=2,
        original="return a < b",
        mutated="return a <= b",
        status="survived",
    )

    first = task_text(project, module, coverage, "tests/test_covsweep_pkg_mod.py")
    later = task_text(project, module, coverage, "tests/test_covsweep_pkg_mod.py", survivors=[survivor])

    assert "Surviving mutants" not in first
    assert "## Surviving mutants" in later and "- pkg/mod.py:2: `return a < b` -> `return a <= b`" in later


def test_the_task_puts_the_changed_lines_it_misses_first(tmp_path):
    from tasks.core.models import FileCoverage
    from tasks.generators.openhands import task_text

    project, module = pkg_mod(tmp_path, "def f(a):\n    if a:\n        return 1\n    return 2\n")
    coverage = FileCoverage(statements=[1, 2, 3, 4], executed_lines=[1])

    aimed = task_text(project, module, coverage, "tests/t.py", changed_lines=[1, 3])
    plain = task_text(project, module, coverage, "tests/t.py")

    paragraphs = aimed.split("\n\n")
    assert paragraphs[1] == "The change under review added or modified line 3: cover those first."
    assert "change under review" not in plain


# -- with Docker: the stand-in image ----------------------------------------------------------------


def _recipe_hash(base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for path in sorted(p for p in STANDIN.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(STANDIN)).encode() + path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def standin_image(sandbox_image) -> str:
    """Built FROM the sandbox image with no network: the real OpenHands image cannot be pulled here."""
    tag = f"covsweep-openhands-standin:{_recipe_hash(sandbox_image)}"
    docker.from_env().images.build(
        path=str(STANDIN), tag=tag, buildargs={"BASE": sandbox_image}, network_mode="none", rm=True, forcerm=True
    )
    return tag


def openhands_containers(label_part: str) -> list[str]:
    """OpenHands containers of this test: their label is their scratch folder."""
    from tasks.generators.openhands import SCRATCH_LABEL

    return [
        c.name
        for c in docker.from_env().containers.list(all=True, filters={"label": SCRATCH_LABEL}, ignore_removed=True)
        if label_part in c.labels.get(SCRATCH_LABEL, "")
    ]


@pytest.fixture
def standin_env(monkeypatch, standin_image):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)
    monkeypatch.setenv("OPENHANDS_IMAGE", standin_image)
    monkeypatch.setenv("OPENHANDS_NETWORK", "host")  # the fake server listens on the host's 127.0.0.1
    return standin_image


@pytest.fixture
def one_module(example, tmp_path):
    from tasks.project.discover import discover
    from tasks.sandbox.runner import prepare_workspace

    project = discover(example, ["shop/discounts.py"])
    return project, project.modules[0], prepare_workspace(tmp_path / "workspace")


def _setup(fake, image, **kw):
    from tasks.generators.openhands import OpenHandsSetup

    return OpenHandsSetup(
        image=image,
        runtime_image="unused",
        model="openai/m/one",
        base_url=fake.base_url if fake else "http://127.0.0.1:9/v1",
        api_key=SecretStr(API_KEY),
        network="host",
        **kw,
    )


@pytest.mark.docker
def test_openhands_tests_are_filtered_and_kept(prefect_api, standin_env, example, fake_llm, capfd, caplog):
    from flows.spec_to_production import spec_to_production

    fake_llm.script(answer(f"Done.\n\n```python\n{DISCOUNT_TESTS}```\n\n```python\n{MORE_DISCOUNT_TESTS}```\n"))
    sources = snapshot(example / "src")

    report = spec_to_production(
        target=str(example),
        modules=["shop/discounts.py"],
        generator="openhands",
        models="m/one",
        llm_base_url=fake_llm.base_url,
        timeout=120,
        mutation="off",  # one OpenHands run is scripted
    )

    module = report.modules[0]
    assert module.status == "reached_target" and module.generator == "openhands", (module.validation, module.metadata)
    assert module.model_used == "openai/m/one"
    assert [(a.model, a.outcome) for a in module.metadata.attempts] == [("openai/m/one", "ok")]
    # Two files merged into one candidate, filtered test by test: the wrong one is dropped.
    assert module.tests.proposed == 6 and module.tests.rejected_failing == 1 and module.tests.accepted >= 3
    generated = (example / module.generated_files[0]).read_text()
    assert "test_a_wrong_expectation" not in generated and "def test_coupons" in generated
    # OpenHands worked on a copy: the target's sources are as they were.
    assert snapshot(example / "src") == sources
    [request] = fake_llm.requests
    assert request.model == "m/one" and request.headers["authorization"] == f"Bearer {API_KEY}"
    assert "/workspace/src/shop/discounts.py" in request.body["messages"][0]["content"]
    assert openhands_containers(report.run_id) == []
    # The key reaches the container and nothing a run leaves behind.
    assert API_KEY not in report.to_json()
    assert_key_left_nowhere(API_KEY, example, capfd, caplog)


def openhands_error(setup, one_module, timeout: float):
    """The error generate_with_openhands fails with on the fixture's module (it must fail)."""
    from tasks.core.errors import ModuleError
    from tasks.core.models import FileCoverage
    from tasks.generators.openhands import generate_with_openhands

    project, module, workspace = one_module
    with pytest.raises(ModuleError) as raised:
        generate_with_openhands(setup, project, module, FileCoverage(), workspace, round_no=1, timeout=timeout)
    return raised.value.info


@pytest.mark.docker
def test_a_silent_openhands_is_killed_as_stuck(standin_image, one_module, fake_llm, tmp_path):
    workspace = one_module[2]
    fake_llm.script(code_answer("STANDIN-SILENT 600\ndef test_never():\n    pass\n"))
    started = time.monotonic()
    error = openhands_error(_setup(fake_llm, standin_image, idle_s=3), one_module, timeout=300)
    assert error.type == "timeout" and "printed nothing for 3s" in error.message
    assert time.monotonic() - started < 60
    assert openhands_containers(str(tmp_path)) == []
    assert not (workspace / "openhands-1").exists()


@pytest.mark.docker
def test_a_busy_openhands_is_killed_at_its_timeout(standin_image, one_module, fake_llm, tmp_path):
    fake_llm.script(code_answer("STANDIN-BUSY 600\ndef test_never():\n    pass\n"))
    error = openhands_error(_setup(fake_llm, standin_image, idle_s=3, timeout_s=6), one_module, timeout=300)
    assert error.type == "timeout" and "did not finish within 6s" in error.message
    assert openhands_containers(str(tmp_path)) == []


@pytest.mark.docker
def test_a_rejected_key_is_an_authentication_error(standin_image, one_module, fake_llm, tmp_path):
    fake_llm.script(unauthorized(echo_key=True))
    error = openhands_error(_setup(fake_llm, standin_image), one_module, timeout=120)
    assert error.type == "authentication", error
    assert API_KEY not in error.message
    assert openhands_containers(str(tmp_path)) == []


@pytest.mark.docker
def test_when_openhands_writes_no_tests_pynguin_steps_in(prefect_api, standin_env, example, fake_llm):
    from flows.spec_to_production import spec_to_production

    fake_llm.script(prose())
    report = spec_to_production(
        target=str(example),
        modules=["shop/inventory.py"],
        generator="openhands",
        models="m/one",
        llm_base_url=fake_llm.base_url,
        timeout=120,
        max_iterations=1,
    )
    module = report.modules[0]
    assert module.generator == "pynguin" and module.success, module
    assert [(a.model, a.outcome) for a in module.metadata.attempts] == [("openai/m/one", "invalid_response")]
    assert any(i.rule == "llm-fallback" for i in module.validation.issues)


@pytest.mark.docker
def test_an_openhands_container_whose_waiter_dies_ends_itself_and_is_swept(standin_image, fake_llm, tmp_path):
    from tasks.generators.openhands import SCRATCH_LABEL
    from tasks.sandbox.containers import DEADLINE_LABEL, LABEL
    from tasks.sandbox.leftovers import remove_leftovers
    from tasks.sandbox.runner import prepare_workspace

    fake_llm.script(code_answer("STANDIN-SILENT 600\ndef test_never():\n    pass\n"))
    copy = prepare_workspace(tmp_path / "copy")
    scratch = str(tmp_path / "scratch")
    # The process waiting on OpenHands is killed (a worker killed with its flow runs) before the budget.
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
from pydantic import SecretStr
from tasks.sandbox import containers
from tasks.generators.openhands import OpenHandsSetup, run_container
containers.SELF_KILL_GRACE_S = 1
setup = OpenHandsSetup(image={standin_image!r}, runtime_image="unused", model="openai/m/one",
                       base_url={fake_llm.base_url!r}, api_key=SecretStr({API_KEY!r}), network="host")
env = {{"LLM_MODEL": setup.model, "LLM_API_KEY": {API_KEY!r}, "LLM_BASE_URL": setup.base_url,
        "SANDBOX_VOLUMES": "{copy}:/workspace:rw"}}
run_container(setup, ["python", "-m", "openhands.core.main", "-t", "write /workspace/tests/test_x.py"], env,
              {{{str(copy)!r}: {{"bind": {str(copy)!r}, "mode": "rw"}}}}, {scratch!r}, 4)
""",
        ],
        cwd=REPO,
    )
    client = docker.from_env()
    deadline = time.monotonic() + 60
    while not (found := client.containers.list(filters={"label": f"{SCRATCH_LABEL}={scratch}"})):
        assert time.monotonic() < deadline and waiter.poll() is None, "the OpenHands container did not start"
        time.sleep(0.2)
    [container] = found
    assert container.labels[LABEL] == "openhands" and DEADLINE_LABEL in container.labels
    while not fake_llm.requests:  # it runs OpenHands' command, which now waits silently
        assert time.monotonic() < deadline, "the stand-in never asked the LLM"
        time.sleep(0.2)
    waiter.kill()
    waiter.wait()
    try:
        deadline = time.monotonic() + 30
        while container.status != "exited" and time.monotonic() < deadline:
            time.sleep(0.2)
            container.reload()
        # Ended by its own timeout (status 124), SIGTERM first: its budget of 4 s and the 1 s of grace passed.
        assert container.status == "exited" and container.attrs["State"]["ExitCode"] == 124
        time.sleep(1.5)
        # Only this test's: a sweep this eager would take the just-ended containers of other sessions.
        assert container.id[:12] in remove_leftovers(client, older_than_s=1, among=f"{SCRATCH_LABEL}={scratch}")
        with pytest.raises(NotFound):
            client.containers.get(container.id)
    finally:
        with suppress(NotFound):
            container.remove(force=True)
