"""covsweep as a service under a burst of submissions, on PostgreSQL (`make postgres`) and on SQLite:
N submissions released at the same moment against a real server, one real process worker running them
in the real sandbox (tests/service_fixtures.py); every submission returns its run id, every run
completes with its report. The heavy version (marker `load`, `make test-load`) writes its figures to
bench/results/service-load.json."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from covsweep import (
    service as covsweep_service,  # here, not first in many threads at once: import deadlock
)
from tests.conftest import REPO
from tests.helpers import run_cli
from tests.service_fixtures import (
    DATABASE_SETTING,
    RunsGoing,
    Service,
    api,
    cancelled_when_failing,
    flow_runs,
    pointed_at,
    postgres_query,
    read_report,
    small_shop,
    wait_while_finishing,
)

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

pytestmark = [pytest.mark.docker, pytest.mark.server]

SMALL, HEAVY = 20, 50
POOL_LIMIT = 4  # flow runs at once on the pool
STALLED_S = 300  # more than one quick run takes on a loaded host, waiting its turn on the pool included
BENCH_RESULTS = REPO / "bench" / "results" / "service-load.json"


@pytest.fixture(scope="module")
def database(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def service_env(request, database) -> dict[str, str]:
    env = {"COVSWEEP_POOL_CONCURRENCY": str(POOL_LIMIT)}
    if database == "postgresql":  # a fresh database for this module's server, which migrates it
        env[DATABASE_SETTING] = request.getfixturevalue("postgres_database")
    return env


class CreateAnswers(logging.Handler):
    """The status of every answer to a create-flow-run request, from httpx's own log of each request."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.statuses: Counter[int] = Counter()
        self._httpx = logging.getLogger("httpx")

    def emit(self, record: logging.LogRecord) -> None:
        # httpx: 'HTTP Request: %s %s "%s %d %s"' (method, url, http version, status, reason)
        if len(record.args or ()) == 5 and str(record.args[1]).endswith("/create_flow_run"):
            self.statuses[record.args[3]] += 1

    def __enter__(self) -> CreateAnswers:
        self._level = self._httpx.level
        self._httpx.setLevel(logging.INFO)
        self._httpx.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self._httpx.removeHandler(self)
        self._httpx.setLevel(self._level)


@dataclass
class Burst:
    targets: list[Path]
    ids: list[str]
    submit_s: list[float]  # each submission, from its release until it had its run id
    all_done_s: float  # from the release until every run was final
    answers: Counter[int]  # create-flow-run answers by status
    runs: dict[str, FlowRun]  # by id, final

    def not_completed(self) -> dict[str, str]:
        return {i: f"{r.state.name}: {r.state.message}" for i, r in self.runs.items() if not r.state.is_completed()}


def submit_at_once(
    service: Service, root: Path, count: int, meanwhile: Callable[[list[str]], None] | None = None
) -> Burst:
    """What `covsweep submit TARGET --generator none` sends, `count` at the same moment, in threads: as
    many CLI processes would take minutes of CPU to start here, and would start one after the other.
    `meanwhile` gets the run ids once every submission has returned, before the runs are waited for."""
    targets = [small_shop(root / f"shop{i}") for i in range(count)]
    together = threading.Barrier(count)

    def submit_one(target: Path) -> tuple[str, float, float]:
        with pointed_at(service):
            together.wait()
            released = time.monotonic()
            run = covsweep_service.submit({"target": str(target), "generator": "none", "timeout": 120}, "normal")
            return str(run.id), released, time.monotonic() - released

    with CreateAnswers() as answers, ThreadPoolExecutor(count) as pool, cancelled_when_failing(service, root):
        submitted = list(pool.map(submit_one, targets))
        ids = [run_id for run_id, _, _ in submitted]
        if meanwhile is not None:
            meanwhile(ids)
        # However long a loaded host takes for them all, runs keep ending: minutes without one is stuck.
        wait_while_finishing(service, ids, STALLED_S)
        runs = flow_runs(service, ids)
    released = min(at for _, at, _ in submitted)
    all_done_s = time.monotonic() - released
    return Burst(targets, ids, [s for _, _, s in submitted], all_done_s, answers.statuses, runs)


def runs_in_database(service: Service, database: str, ids: list[str]) -> set[str]:
    """The burst's flow runs as the server's own database holds them, read from it directly."""
    if database == "postgresql":
        rows = postgres_query(service.env[DATABASE_SETTING], "SELECT id FROM flow_run WHERE id = ANY($1::uuid[])", ids)
        return {str(r["id"]) for r in rows}
    with sqlite3.connect(service.home / "prefect.db") as connection:
        marks = ",".join("?" * len(ids))
        return {row[0] for row in connection.execute(f"SELECT id FROM flow_run WHERE id IN ({marks})", ids)}


def assert_every_submission_made_one_run(service: Service, database: str, burst: Burst) -> None:
    assert len(set(burst.ids)) == len(burst.runs) == len(burst.targets)  # every submission is its own run, none lost
    assert {r.work_queue_name for r in burst.runs.values()} == {"normal"}
    assert runs_in_database(service, database, burst.ids) == set(burst.ids)
    # Each submission had at least one answer that made (or handed back) its run; 503s were asked again.
    assert sum(n for status, n in burst.answers.items() if status in (200, 201)) >= len(burst.ids), burst.answers


def assert_completed_runs_have_their_reports(service: Service, burst: Burst) -> None:
    done = [(i, target) for i, target in zip(burst.ids, burst.targets, strict=True) if i not in burst.not_completed()]
    for run_id, target in done:
        report = read_report(service, run_id)
        assert (report["run_id"], report["target"]) == (run_id, str(target.resolve()))
        assert "shop/money.py" in [m["module"] for m in report["modules"]] and report["totals"]["failed"] == 0
        assert json.loads((target / ".covsweep" / "report.json").read_text()) == report


def assert_all_completed_with_reports(service: Service, database: str, burst: Burst) -> None:
    assert_every_submission_made_one_run(service, database, burst)
    assert not burst.not_completed(), f"{burst.not_completed()}\n{service.worker_log.read_text()[-6000:]}"
    assert_completed_runs_have_their_reports(service, burst)


def figures(burst: Burst) -> dict[str, object]:
    return {
        "slowest_submit_s": round(max(burst.submit_s), 2),
        "median_submit_s": round(statistics.median(burst.submit_s), 2),
        "all_done_s": round(burst.all_done_s, 1),
        "create_answers": {str(status): n for status, n in sorted(burst.answers.items())},
        "completed": len(burst.runs) - len(burst.not_completed()),
        "not_completed": sorted(burst.not_completed().values()),
    }


def record(database: str, burst: Burst) -> None:
    """This database's figures into bench/results/service-load.json, next to the other database's."""
    BENCH_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(BENCH_RESULTS.read_text()) if BENCH_RESULTS.exists() else {}
    results.update(
        submissions=len(burst.ids),
        pool_limit=POOL_LIMIT,
        workers=1,
        run="covsweep submit <one-module copy of examples/shop> --generator none",
        cpus=os.cpu_count(),
    )
    results[database] = {
        **figures(burst),
        "load_1m_after": round(os.getloadavg()[0], 1),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    BENCH_RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{len(burst.ids)} submissions on {database}: {results[database]}")


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_twenty_submissions_at_once_on_postgresql_queue_within_the_pool_limit_and_complete(service, database, tmp_path):
    def listed_by_queue(ids: list[str]) -> None:
        listed = run_cli("queue", env=service.env)
        assert listed.returncode == 0, listed.stderr
        still_open = [i for i, r in flow_runs(service, ids).items() if not r.state.is_final()]
        assert all(i in listed.stdout for i in still_open)  # open when `queue` ran, so listed by it

    with RunsGoing(service) as going:
        burst = submit_at_once(service, tmp_path, SMALL, meanwhile=listed_by_queue)
    assert_all_completed_with_reports(service, database, burst)
    with api(service) as client:
        assert client.read_work_pool("covsweep").concurrency_limit == POOL_LIMIT
    # Prefect enforces that limit when the worker polls; on PostgreSQL its poll skips the rows a state
    # change holds locked (FOR UPDATE SKIP LOCKED), and on a loaded host it was seen running one more.
    assert 1 <= going.most <= POOL_LIMIT + 1
    # And what a user types to read one back.
    shown = run_cli("results", burst.ids[-1], env=service.env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == read_report(service, burst.ids[-1])
    print(f"{SMALL} submissions on {database}: {figures(burst)}, at most {going.most} at once")


@pytest.mark.load
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_fifty_submissions_at_once_on_postgresql_all_complete_with_their_reports(service, database, tmp_path):
    burst = submit_at_once(service, tmp_path, HEAVY)
    record(database, burst)
    assert_all_completed_with_reports(service, database, burst)


@pytest.mark.load
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_fifty_submissions_at_once_on_sqlite_complete_or_crash_only_on_the_busy_database(service, database, tmp_path):
    """SQLite takes one write at a time: under this burst the worker's own requests can be refused (503)
    through all of Prefect's retries (about a minute), and the worker then marks that run Crashed. The
    submissions themselves all get their run (covsweep submit asks again for three minutes)."""
    burst = submit_at_once(service, tmp_path, HEAVY)
    record(database, burst)
    assert_every_submission_made_one_run(service, database, burst)
    busy = "Crashed: Failed to submit flow run to infrastructure: PrefectHTTPStatusError: Server error '503"
    crashed_otherwise = {i: why for i, why in burst.not_completed().items() if not why.startswith(busy)}
    assert not crashed_otherwise, f"{crashed_otherwise}\n{service.worker_log.read_text()[-6000:]}"
    assert_completed_runs_have_their_reports(service, burst)
