"""The module jobs and the module task: a job pickles small whatever the project's size, carries no
key, and the task runs in another process (as on a Dask worker) with the run's spend shared."""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from tasks.core.llm import LLMSettings, LLMSpec, Price
from tasks.core.models import FileCoverage, ModuleResult, ProjectCoverage, SandboxConfig, Source
from tasks.core.options import RunOptions
from tasks.core.plan import ModuleJob, Plan, RepositoryRef
from tasks.coverage import ledger
from tasks.coverage.measurement import Measurement, measure
from tasks.llm.config import LLMConfig, spec_of
from tasks.llm.fallback import LLMGenerationError, complete_with_fallback
from tasks.llm.session import session_in_use
from tasks.modules import module_jobs, with_not_changed
from tasks.project.discover import discover
from tasks.session import close_run_llm, open_run_llm
from tests.fake_llm import API_KEY, code_answer
from tests.helpers import write_project

REPO = Path(__file__).resolve().parent.parent
ANSWER_COST = 0.002  # what the scripted provider says each answer cost (no price is configured)

CALC = """
def add(a, b):
    return a + b


def sign(n):
    if n < 0:
        return -1
    return 1
"""
SIGN_TESTS = """\
from tinypkg.calc import sign


def test_sign():
    assert sign(-3) == -1
    assert sign(2) == 1
"""


def synth_project(root: Path, modules: int):
    """bench/synth.py's project of `modules` modules, discovered."""
    loader = importlib.util.spec_from_file_location("covsweep_bench_synth", REPO / "bench" / "synth.py")
    synth = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(synth)
    return discover(synth.generate(root, modules))


def plan_for(project, tmp_path: Path, sandbox: SandboxConfig, generator: str = "llm", **options) -> Plan:
    return Plan(
        run_id="run-1",
        project=project,
        generator=generator,
        sandbox=sandbox,
        out=project.target / "tests" / "generated",
        report=tmp_path / "report.json",
        workspace=tmp_path / "runs" / "run-1",
        options=RunOptions(target=str(project.target), **options),
    )


def spec(**settings) -> LLMSpec:
    prices = {"m/one": Price(prompt=1.0, completion=2.0)}
    return LLMSpec(run_id="run-1", settings=LLMSettings(models=["m/one"], prices=prices, **settings))


def test_a_job_pickles_to_the_same_size_for_a_project_of_10_and_of_2000_modules(tmp_path):
    sizes, project_sizes = [], []
    for modules in (10, 2000):
        project = synth_project(tmp_path / f"p{modules:04d}", modules)
        baseline = Measurement(
            coverage=ProjectCoverage(files={m.path: FileCoverage(statements=[1, 2, 3]) for m in project.modules})
        )
        plan = plan_for(project, tmp_path, SandboxConfig(kind="local"))
        jobs = module_jobs.fn(plan, baseline, spec())
        assert len(jobs) == modules
        sizes.append(len(pickle.dumps(jobs[0])))
        project_sizes.append(len(pickle.dumps(project)))
    # The module's names have one more digit in the larger project (mod_000 / mod_0000): 4 names of it.
    assert abs(sizes[1] - sizes[0]) <= 8, sizes
    assert project_sizes[1] > 100 * sizes[1]  # what a job carried before: the whole project


def test_neither_the_pickled_job_nor_the_spec_holds_the_key(tmp_path):
    project = write_project(tmp_path / "tiny", {"src/tinypkg/__init__.py": "", "src/tinypkg/calc.py": CALC})
    project = discover(project)
    config = LLMConfig(base_url="http://127.0.0.1:9/v1", api_key=SecretStr(API_KEY), models=["m/one"])
    llm = spec_of(config, "run-1", shared_spend=True)
    [job] = module_jobs.fn(
        plan_for(project, tmp_path, SandboxConfig(kind="local")), Measurement(coverage=ProjectCoverage()), llm
    )
    key = API_KEY.encode()
    for data in (pickle.dumps(job), cloudpickle.dumps(job), pickle.dumps(llm), llm.model_dump_json().encode()):
        assert key not in data
    assert key not in job.model_dump_json().encode()
    assert llm.settings.models == ["m/one"] and job.llm == llm


# -- a module task in another process -----------------------------------------------------------

CHILD = """
import pickle, sys
from tasks.modules import generate_module
job = pickle.loads(open(sys.argv[1], "rb").read())
result = generate_module(job=job)
open(sys.argv[2], "wb").write(pickle.dumps(result))
"""


def generate_elsewhere(job: ModuleJob, tmp_path: Path) -> ModuleResult:
    """The module task run in a process of its own, given the pickled job, as a Dask worker runs it:
    it reads the key from its environment and reaches the run's spend through the Prefect API."""
    from prefect.settings import PREFECT_API_URL

    job_file, result_file = tmp_path / f"{job.module.dotted}.job", tmp_path / f"{job.module.dotted}.result"
    job_file.write_bytes(pickle.dumps(job))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(job_file), str(result_file)],
        cwd=REPO,
        env=os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert API_KEY not in done.stdout + done.stderr
    return pickle.loads(result_file.read_bytes())


@pytest.fixture
def tiny(tmp_path, local_config, fake_llm, monkeypatch, prefect_api):
    """A two-module project measured with the local sandbox, the run's LLM opened as the flow opens
    it (spend shared through the Prefect API), and the key in the environment only."""
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)
    monkeypatch.setenv("COVSWEEP_LLM_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("COVSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    root = write_project(
        tmp_path / "tiny",
        {
            "src/tinypkg/__init__.py": "",
            "src/tinypkg/calc.py": CALC,
            "src/tinypkg/more.py": "from tinypkg.calc import sign\n\n\ndef twice(n):\n    return 2 * sign(n)\n",
            "tests/test_calc.py": "from tinypkg.calc import add\n\n\ndef test_add():\n    assert add(1, 1) == 2\n",
        },
    )
    project = discover(root)
    baseline = measure(local_config, project, project.test_paths, tmp_path / "baseline", timeout=120)
    plan = plan_for(project, tmp_path, local_config, coverage_target=100, max_iterations=1, reruns=1, timeout=120)
    llm = open_run_llm.fn(plan.run_id, "m/one", None, ANSWER_COST, shared_spend=True)
    try:
        yield {m.module.dotted: m for m in module_jobs.fn(plan, baseline, llm)}, llm
    finally:
        close_run_llm(llm)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_global_concurrency_limit_by_name(llm.spend_limit)  # the run's end deleted it


def test_a_module_task_in_another_process_generates_and_its_spend_counts_for_the_run(tiny, fake_llm, tmp_path):
    jobs, llm = tiny
    fake_llm.script(code_answer(SIGN_TESTS, cost=ANSWER_COST), model="m/one")
    result = generate_elsewhere(jobs["tinypkg.calc"], tmp_path)
    assert (result.status, result.error) == ("reached_target", None)
    assert result.tests.accepted == 1 and result.coverage.line == 100.0
    assert result.metadata.cost == ANSWER_COST
    assert fake_llm.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    flows_session = session_in_use(llm)  # the session the flow's process holds
    assert flows_session.spend.summary().requests == 0  # nothing was asked from this process
    assert flows_session.spend.spent_usd == ANSWER_COST  # but the run's spend has what the other one paid


def test_a_budget_spent_in_one_process_stops_requests_in_every_other(tiny, fake_llm, tmp_path):
    jobs, llm = tiny
    fake_llm.script(code_answer(SIGN_TESTS, cost=ANSWER_COST), model="m/one")
    generate_elsewhere(jobs["tinypkg.calc"], tmp_path)  # spends the whole budget
    asked = len(fake_llm.requests)

    later = generate_elsewhere(jobs["tinypkg.more"], tmp_path)  # a third process
    assert (later.status, later.error.type) == ("failed", "budget")
    with pytest.raises(LLMGenerationError) as stopped:  # and the flow's own
        complete_with_fallback(session_in_use(llm), [{"role": "user", "content": "tests"}], accept=str, timeout=30)
    assert stopped.value.info.type == "budget"
    assert len(fake_llm.requests) == asked == 1


def test_on_a_cluster_a_job_carries_the_image_the_user_named_or_none_of_this_hosts(tmp_path):
    project = discover(write_project(tmp_path / "tiny", {"src/tinypkg/__init__.py": "", "src/tinypkg/calc.py": CALC}))
    built_here = SandboxConfig(kind="docker", image="covsweep-target:0123456789ab")
    plan = plan_for(project, tmp_path, built_here).model_copy(update={"cluster": "tcp://127.0.0.1:8786"})
    nothing = Measurement(coverage=ProjectCoverage())

    [job] = module_jobs.fn(plan, nothing)
    assert job.portable and job.sandbox.image == ""  # each worker builds or finds its own
    [named] = module_jobs.fn(plan.model_copy(update={"sandbox_image": "mine:1"}), nothing)
    assert named.portable and named.sandbox.image == "mine:1"
    [threads] = module_jobs.fn(plan.model_copy(update={"cluster": None}), nothing)
    assert not threads.portable and threads.sandbox == built_here
    assert job.repository is None and threads.repository is None


def test_on_a_cluster_a_job_of_a_clone_carries_where_a_worker_clones_it(tmp_path):
    project = discover(write_project(tmp_path / "runs" / "run-1" / "source", {"calc.py": CALC}))
    sha = "0123456789abcdef0123456789abcdef01234567"
    plan = plan_for(project, tmp_path, SandboxConfig(kind="local")).model_copy(
        update={
            "cluster": "tcp://127.0.0.1:8786",
            "repo": project.target,
            "source": Source(repository="https://example.org/calc.git", ref="main", commit=sha),
        }
    )
    nothing = Measurement(coverage=ProjectCoverage())
    [job] = module_jobs.fn(plan, nothing)
    assert job.repository == RepositoryRef(url="https://example.org/calc.git", commit=sha, root=project.target)
    # A work tree's clone: the user's folder as a file:// URL, which a host sees on a shared file system.
    tree = plan.model_copy(update={"source": Source(repository="/srv/work tree", ref="main", commit=sha)})
    [job] = module_jobs.fn(tree, nothing)
    assert job.repository.url == "file:///srv/work%20tree"


def test_with_changed_since_only_the_changed_modules_get_jobs_and_the_others_are_skipped(tmp_path):
    project = synth_project(tmp_path / "proj", 3)
    changed, untouched = project.modules[1], [project.modules[0], project.modules[2]]
    plan = plan_for(project, tmp_path, SandboxConfig(kind="local"), generator="pynguin", changed_since="main")
    plan.changed = {changed.path: [2, 3]}
    plan.framework = "unittest"
    coverage = FileCoverage(statements=[1, 2, 3, 4], executed_lines=[1, 2])
    baseline = Measurement(coverage=ProjectCoverage(files={m.path: coverage for m in project.modules}))

    [job] = module_jobs.fn(plan, baseline)
    results = with_not_changed(plan, baseline, [ModuleResult(module=changed.path, status="improved", success=True)])

    assert (job.module.path, job.changed_lines, job.framework) == (changed.path, [2, 3], "unittest")
    assert [r.module for r in results] == [m.path for m in project.modules]  # the project's order
    for module in untouched:
        result = results[project.modules.index(module)]
        assert (result.status, result.success, result.coverage.line, result.coverage_before.line) == (
            "skipped",
            True,
            50.0,
            50.0,
        )
        [issue] = result.validation.issues
        assert (issue.level, issue.rule, issue.message) == ("INFO", "not-changed", "not changed since main")
    assert results[1].status == "improved"


def test_without_changed_since_every_module_gets_a_job(tmp_path):
    project = synth_project(tmp_path / "proj", 3)
    plan = plan_for(project, tmp_path, SandboxConfig(kind="local"), generator="pynguin")
    jobs = module_jobs.fn(plan, Measurement(coverage=ProjectCoverage()))
    assert [j.module.path for j in jobs] == [m.path for m in project.modules]
    assert {j.changed_lines for j in jobs} == {None}


def test_modules_finished_by_pynguin_alone_are_generated_again_once_and_llm_ones_are_not(tmp_path):
    """The offline generator became examples + Pynguin: what the older one finished does not match."""
    project = discover(write_project(tmp_path / "p", {"m.py": "def f():\n    return 1\n"}))
    tests = ledger.tests_fingerprint(project.test_paths)

    def fingerprint(settings: dict) -> str:
        return ledger.module_fingerprint(project.modules[0], tests, settings)

    offline = plan_for(project, tmp_path, SandboxConfig(kind="local"), generator="pynguin").fingerprint_settings()
    before = {k: v for k, v in offline.items() if k != "offline"}  # what covsweep fingerprinted before it
    assert fingerprint(offline) != fingerprint(before)
    llm = plan_for(project, tmp_path, SandboxConfig(kind="local"), generator="llm").fingerprint_settings()
    assert "offline" not in llm
