"""--cluster end to end: module tasks on a real Dask cluster (`dask scheduler` and `dask worker` processes
of this venv), real Docker sandboxes, the scripted LLM; and its faults: a worker killed mid-module, a
scheduler unreachable at the start or lost mid-run, a worker that cannot see the target."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from flows.spec_to_production import spec_to_production
from tests.dask_fixtures import DaskCluster, start_cluster
from tests.fake_llm import API_KEY, FakeLLM, Reply, code_answer, completion_body
from tests.git_fixtures import SIGN_TESTS, run_git
from tests.helpers import free_port, write_project
from tests.service_fixtures import wait_until

QUAD = {
    "quad/__init__.py": "",
    "quad/alpha.py": """
        def sign(x):
            if x < 0:
                return -1
            return 1 if x else 0
        """,
    "quad/beta.py": """
        def clamp(value, low=0, high=10):
            if value < low:
                return low
            if value > high:
                return high
            return value
        """,
    "quad/gamma.py": """
        def grade(score):
            if score >= 90:
                return "A"
            if score >= 75:
                return "B"
            return "C"
        """,
    "quad/delta.py": """
        def halve(n):
            if n % 2:
                raise ValueError("odd")
            return n // 2
        """,
    "tests/test_alpha.py": """
        from quad.alpha import sign


        def test_negative():
            assert sign(-2) == -1
        """,
}
# What the scripted LLM answers for each module: tests that pass and cover it all.
ANSWERS = {
    "quad.alpha": "from quad.alpha import sign\n\n\ndef test_sign():\n    assert sign(-1) == -1\n"
    "    assert sign(0) == 0\n    assert sign(4) == 1\n",
    "quad.beta": "from quad.beta import clamp\n\n\ndef test_clamp():\n    assert clamp(-1) == 0\n"
    "    assert clamp(11) == 10\n    assert clamp(5) == 5\n",
    "quad.gamma": "from quad.gamma import grade\n\n\ndef test_grade():\n    assert grade(95) == 'A'\n"
    "    assert grade(80) == 'B'\n    assert grade(10) == 'C'\n",
    "quad.delta": "import pytest\n\nfrom quad.delta import halve\n\n\ndef test_halve():\n    assert halve(4) == 2\n"
    "    with pytest.raises(ValueError):\n        halve(3)\n",
}
MODULE_IN_PROMPT = re.compile(r"The module under test is `([\w.]+)`")


def module_asked(request: dict) -> str | None:
    """The dotted module a chat-completions request asks tests for."""
    messages = (request.get("body") or {}).get("messages", [])
    found = MODULE_IN_PROMPT.search("\n".join(str(m.get("content", "")) for m in messages))
    return found.group(1) if found else None


def answering(request: dict) -> bytes:
    code = ANSWERS[module_asked(request)]
    return json.dumps(completion_body(f"```python\n{code}```", model="m/one")).encode()


def replies(count: int, delay_s: float = 0.0) -> list[Reply]:
    return [Reply(body=answering, headers={"Content-Type": "application/json"}, delay_s=delay_s)] * count


def costing_together(fake: FakeLLM, usd: float, together: int) -> Reply:
    """An answer the provider says cost `usd` (no price is configured for m/one), sent once `together`
    requests have come in: each of them is paid for before any of their modules goes on."""

    def body(request: dict) -> bytes:
        wait_until(f"{together} requests", lambda: len(fake.requests) >= together, timeout=120, poll=0.05)
        code = ANSWERS[module_asked(request)]
        return json.dumps(completion_body(f"```python\n{code}```", model="m/one", cost=usd)).encode()

    return Reply(body=body, headers={"Content-Type": "application/json"})


def asked(fake: FakeLLM) -> list[str | None]:
    return [module_asked({"body": r.body}) for r in list(fake.requests)]


def options(fake: FakeLLM, **more) -> dict:
    return {
        "generator": "llm",
        "models": "m/one",
        "llm_base_url": fake.base_url,
        "max_iterations": 1,
        "reruns": 1,
        "mutation": "off",
        "timeout": 240,
        "concurrency": 4,
        **more,
    }


def figures(report) -> list:
    """What a user reads of a report, without times, workers and run ids."""
    per_module = [
        (m.module, m.status, m.success, m.coverage_before, m.coverage, m.tests, m.generator, m.model_used, m.error)
        for m in report.modules
    ]
    return [per_module, report.totals]


@pytest.fixture
def llm_key(monkeypatch):
    monkeypatch.setenv("COVSWEEP_LLM_API_KEY", API_KEY)


def test_a_cluster_run_spreads_modules_over_both_workers_and_equals_a_thread_run(
    prefect_api, sandbox_image, dask_cluster, fake_llm, llm_key, tmp_path
):
    fake_llm.script(*replies(8, delay_s=1.0))  # long enough for the scheduler to give both workers some
    one, two = write_project(tmp_path / "one", QUAD), write_project(tmp_path / "two", QUAD)

    threads = spec_to_production(target=str(one), **options(fake_llm))
    cluster = spec_to_production(target=str(two), cluster=dask_cluster.address, **options(fake_llm))

    assert {m.worker for m in threads.modules} == {socket.gethostname()}
    assert {m.worker for m in cluster.modules} == {"w-1", "w-2"}, dask_cluster.logs()
    assert figures(cluster) == figures(threads)
    assert [m.status for m in cluster.modules] == ["reached_target"] * 4
    for m in cluster.modules:
        assert (two / m.generated_files[0]).read_bytes() == (one / m.generated_files[0]).read_bytes()
    # Each worker host took its own snapshot in its own cache, removed when the modules were done.
    runs = tmp_path / "dask" / "worker-cache" / "runs"
    assert runs.is_dir() and not (runs / cluster.run_id).exists()


def test_a_repository_target_is_cloned_at_the_runs_commit_by_the_worker_that_runs_its_module(
    prefect_api, sandbox_image, dask_cluster, fake_llm, llm_key, origin, run_cache, tmp_path
):
    """The workers keep their cache apart from the flow's, as on another host: the flow's clone is not theirs."""
    fake_llm.script(code_answer(SIGN_TESTS))
    report = spec_to_production(
        target=origin.url, cluster=dask_cluster.address, report=str(tmp_path / "report.json"), **options(fake_llm)
    )

    [calc] = report.modules
    assert calc.status == "reached_target" and calc.coverage_before.line < calc.coverage.line == 100.0, calc
    assert calc.worker in {"w-1", "w-2"} and report.source.commit == origin.second
    clones = tmp_path / "dask" / "worker-cache" / "repositories"
    [clone] = [path for path in clones.glob(f"*/{origin.second}") if path.is_dir()]
    assert run_git("rev-parse", "HEAD", cwd=clone).strip() == origin.second
    assert "+def test_sign():" in Path(report.delivery.patch).read_text()


def test_a_module_whose_worker_is_killed_is_run_again_on_the_other_and_the_run_completes(
    prefect_api, sandbox_image, dask_cluster, fake_llm, llm_key, tmp_path
):
    fake_llm.script(*replies(12, delay_s=20.0))
    target = write_project(tmp_path / "quad", QUAD)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(spec_to_production, target=str(target), cluster=dask_cluster.address, **options(fake_llm))
        # Four requests waiting on the LLM: each worker's two threads are in the middle of a module.
        wait_until("every module asking the LLM", lambda: len(fake_llm.requests) >= 4, timeout=400)
        dask_cluster.kill_worker("w-2")
        report = running.result(timeout=600)

    assert [(m.module, m.status) for m in report.modules] == [
        (f"quad/{name}.py", "reached_target") for name in ("alpha", "beta", "delta", "gamma")
    ]
    assert {m.worker for m in report.modules} == {"w-1"}, dask_cluster.logs()
    # w-2's two modules were asked for again, on w-1: six requests for four modules.
    counts = {name: asked(fake_llm).count(name) for name in ANSWERS}
    assert sorted(counts.values()) == [1, 1, 2, 2], counts
    # Run again under the same task run id, which the server took: one Completed task run a module.
    assert wait_until("the module task runs recorded", lambda: module_task_runs(report.run_id), timeout=60) == [
        (f"generate quad/{name}.py", "COMPLETED") for name in ("alpha", "beta", "delta", "gamma")
    ]


def module_task_runs(run_id: str) -> list[tuple[str, str]] | None:
    """The run's generate task runs (name, state) once every one of them is final, else None."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        found = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    runs = sorted((t.name, t.state_type.value if t.state_type else "") for t in found if t.name.startswith("generate "))
    return runs if len(runs) == 4 and all(state in ("COMPLETED", "FAILED", "CRASHED") for _, state in runs) else None


@contextmanager
def request_rate(per_second: float) -> Iterator[None]:
    """The global concurrency limit covsweep's LLM requests wait on, while the block runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from tasks.llm.fallback import REQUEST_RATE_LIMIT

    limit = GlobalConcurrencyLimitCreate(name=REQUEST_RATE_LIMIT, limit=1, slot_decay_per_second=per_second)
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(limit)
        try:
            yield
        finally:
            client.delete_global_concurrency_limit_by_name(REQUEST_RATE_LIMIT)


def test_the_budget_and_the_request_rate_hold_for_the_run_across_workers(
    prefect_api, sandbox_image, fake_llm, llm_key, tmp_path
):
    """One thread a worker, two modules at once: alpha and beta on different workers, $0.002 each, both paid
    before either goes on. Neither worker alone reached the $0.003 budget; the run did, and gamma and delta
    ask nothing. One request every 2 s for every worker: alpha's and beta's, sent at about the same time,
    arrive 2 s apart."""
    cluster = DaskCluster(tmp_path / "dask", {"COVSWEEP_LLM_API_KEY": API_KEY})
    try:
        cluster.start_scheduler()
        for name in ("w-1", "w-2"):
            cluster.start_worker(name, threads=1)
        cluster.wait_for_workers(2)
        fake_llm.script(*[costing_together(fake_llm, 0.002, together=2)] * 2)
        target = write_project(tmp_path / "quad", QUAD)
        with request_rate(0.5):
            report = spec_to_production(
                target=str(target), cluster=cluster.address, budget_usd=0.003, **options(fake_llm, concurrency=2)
            )
    finally:
        cluster.stop()
    by_module = {m.module: m for m in report.modules}
    first = [by_module["quad/alpha.py"], by_module["quad/beta.py"]]
    assert [m.status for m in first] == ["reached_target"] * 2 and {m.worker for m in first} == {"w-1", "w-2"}
    assert [(m.status, m.error.type) for m in (by_module["quad/delta.py"], by_module["quad/gamma.py"])] == [
        ("failed", "budget")
    ] * 2
    assert sorted(asked(fake_llm)) == ["quad.alpha", "quad.beta"]
    assert report.totals.cost_usd == pytest.approx(0.004)
    assert fake_llm.requests[1].at - fake_llm.requests[0].at >= 1.5


def covsweep_run(target: Path, fake: FakeLLM, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "covsweep", "run", str(target), "--generator", "llm", "--models", "m/one"]
    command += ["--llm-base-url", fake.base_url, "--max-iterations", "1", "--reruns", "1", "--mutation", "off"]
    env = {**os.environ, "COVSWEEP_LLM_API_KEY": API_KEY}
    return subprocess.Popen([*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.server
def test_a_lost_scheduler_fails_the_run_in_one_line_and_a_rerun_resumes_the_finished_modules(
    sandbox_image, fake_llm, tmp_path
):
    cluster = start_cluster(DaskCluster(tmp_path / "dask", {"COVSWEEP_LLM_API_KEY": API_KEY}))
    target = write_project(tmp_path / "quad", QUAD)
    try:
        # Two modules at a time, in the project's order: alpha and beta answered at once, then gamma and
        # delta kept waiting on the LLM while the scheduler goes.
        fake_llm.script(*replies(2), *replies(2, delay_s=120.0))
        first = covsweep_run(target, fake_llm, "--cluster", cluster.address, "--concurrency", "2")
        wait_until("gamma and delta asking the LLM", lambda: len(fake_llm.requests) >= 4, timeout=400)
        cluster.kill_scheduler()
        for name in list(cluster.workers):
            cluster.kill_worker(name)  # the cluster's host is gone: nothing finishes gamma or delta
        out, err = first.communicate(timeout=300)
        assert first.returncode == 1, out + err
        said = [line for line in err.splitlines() if line.startswith("covsweep: ")]
        assert said == [
            f"covsweep: error: the Dask scheduler at {cluster.address} was lost mid-run (2 of 4 modules finished): "
            "run again to resume from the finished modules"
        ], err
        assert sorted(asked(fake_llm)[:2]) == ["quad.alpha", "quad.beta"]

        start_cluster(cluster)
        fake_llm.script(*replies(2))
        second = covsweep_run(target, fake_llm, "--cluster", cluster.address, "--concurrency", "2")
        out, err = second.communicate(timeout=600)
        assert second.returncode == 0, out + err + cluster.logs()
    finally:
        cluster.stop()
    report = json.loads((target / ".covsweep" / "report.json").read_text())
    status = {m["module"]: (m["status"], [i["rule"] for i in m["validation"]["issues"]]) for m in report["modules"]}
    assert status == {
        "quad/alpha.py": ("skipped", ["resumed"]),  # generated by the killed run, validated by this one
        "quad/beta.py": ("skipped", ["resumed"]),
        "quad/delta.py": ("reached_target", []),
        "quad/gamma.py": ("reached_target", []),
    }
    assert sorted(asked(fake_llm)[4:]) == ["quad.delta", "quad.gamma"]  # nothing asked again for alpha, beta
    assert sorted(p.name for p in (target / "tests" / "generated").glob("test_*.py")) == [
        f"test_quad_{name}.py" for name in ("alpha", "beta", "delta", "gamma")
    ]


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path):
    target = write_project(tmp_path / "quad", QUAD)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    for how, env in ((["--cluster", address], {}), ([], {"COVSWEEP_CLUSTER": address})):
        result = subprocess.run(
            [sys.executable, "-m", "covsweep", "run", str(target), "--generator", "llm", "--sandbox", "local", *how],
            env={**os.environ, "COVSWEEP_LLM_API_KEY": API_KEY, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.splitlines() == [
            f"covsweep: error: cannot reach the Dask scheduler at {address} (--cluster, COVSWEEP_CLUSTER or block "
            "covsweep-cluster): Connection refused"
        ]


def blind_worker(cluster: DaskCluster, name: str, hidden: Path) -> None:
    """A worker of this host that cannot see `hidden`: in a mount namespace of its own, an empty tmpfs
    over it (a host whose shared file system lacks the folder)."""
    mount = f'mount -t tmpfs tmpfs {hidden} && exec "$@"'
    cluster.start_worker(name, prefix=("unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh"))


@pytest.fixture
def half_blind_cluster(tmp_path):
    """w-1 sees everything; w-blind does not see tmp_path/shared."""
    (tmp_path / "shared").mkdir()
    cluster = DaskCluster(tmp_path / "dask", {"COVSWEEP_LLM_API_KEY": API_KEY})
    try:
        cluster.start_scheduler()
        cluster.start_worker("w-1")
        blind_worker(cluster, "w-blind", tmp_path / "shared")
        cluster.wait_for_workers(2)
        yield cluster
    finally:
        cluster.stop()


def test_the_check_names_the_worker_that_cannot_see_a_directory_target(half_blind_cluster, tmp_path):
    from tasks.cluster.scheduler import check_cluster
    from tasks.core.errors import InputError

    target = write_project(tmp_path / "shared" / "quad", QUAD)
    with pytest.raises(InputError) as refused:
        check_cluster(half_blind_cluster.address, target, None, False, 10)
    assert str(refused.value).startswith("Dask worker w-blind (tcp://127.0.0.1:")
    assert str(refused.value).endswith(
        f"cannot see {target}: a directory TARGET must be at the same path on every worker (a shared file system)"
    )
    # The same check passes for a folder both see.
    visible = write_project(tmp_path / "quad", QUAD)
    assert check_cluster(half_blind_cluster.address, visible, None, False, 10) == ["w-1", "w-blind"]


@pytest.mark.server
def test_a_run_whose_target_a_worker_cannot_see_is_one_line_and_exit_2(
    half_blind_cluster, sandbox_image, fake_llm, tmp_path
):
    target = write_project(tmp_path / "shared" / "quad", QUAD)
    run = covsweep_run(target, fake_llm, "--cluster", half_blind_cluster.address)
    out, err = run.communicate(timeout=300)
    assert (run.returncode, out) == (2, ""), err
    [line] = err.splitlines()
    assert re.fullmatch(
        rf"covsweep: error: Dask worker w-blind \(tcp://127\.0\.0\.1:\d+\) cannot see {re.escape(str(target))}: "
        r"a directory TARGET must be at the same path on every worker \(a shared file system\)",
        line,
    )
    assert fake_llm.requests == [] and not (target / "tests" / "generated").exists()


def test_the_cluster_is_the_option_else_the_environment_else_the_saved_block(prefect_api):
    from blocks.cluster import CovsweepCluster
    from tasks.checks import cluster_address
    from tasks.core.options import RunOptions
    from tasks.core.settings import Settings

    given, unset = RunOptions(target="x", cluster="tcp://option:1"), RunOptions(target="x")
    env, no_env = Settings(cluster="tcp://env:1"), Settings(cluster=None)
    assert cluster_address(given, env, load_blocks=True) == "tcp://option:1"
    assert cluster_address(unset, env, load_blocks=True) == "tcp://env:1"
    assert cluster_address(unset, no_env, load_blocks=True) is None
    CovsweepCluster(address="tcp://block:1").save("default", overwrite=True)
    try:
        assert cluster_address(unset, no_env, load_blocks=True) == "tcp://block:1"
        assert cluster_address(unset, env, load_blocks=True) == "tcp://env:1"
        assert cluster_address(unset, no_env, load_blocks=False) is None  # `covsweep run`'s preflight reads none
    finally:
        CovsweepCluster.delete("default")
