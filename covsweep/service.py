"""covsweep as a service, seen from the command line: submit runs, watch them, read their reports back."""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from covsweep.api import NoServer, api_url, connect
from tasks.core.names import (
    DEPLOYMENT,
    FLOWS,
    MODULE_TASK_PREFIX,
    MODULES_KEY,
    PRIORITIES,
    PROGRESS_KEY,
)
from tasks.history.reports import ResultUnavailable, stored_patch, stored_result, to_json

# How long a submission keeps asking a server that answers 503 (SQLite's "database is locked").
SUBMIT_PATIENCE_S = 180.0
# Between two attempts, a random wait (apart from the others refused with it) of half to all of a bound
# that doubles from the first to the last: quick while the server is busy for a moment, gentler when it
# stays busy.
RETRY_FIRST_S, RETRY_LAST_S = 1.0, 8.0
# A request whose answer never came (or came cut off): the server may have acted on it.
UNANSWERED = (httpx.TimeoutException, httpx.ReadError, httpx.RemoteProtocolError)
FINAL = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
# Loading the results block queues one event; its flush at exit would warn on stderr after our output.
logging.getLogger("EventsWorker").setLevel(logging.ERROR)


class BadRequest(Exception):
    """Nothing to act on (no server, no deployment, no such run): exit status 2."""


class RunNotDone(Exception):
    """The run has no report to give: still going, failed, crashed, cancelled, unreadable; exit status 1."""


@contextmanager
def _client() -> Iterator[SyncPrefectClient]:
    try:
        with connect() as client:
            yield client
    except NoServer as exc:
        raise BadRequest(str(exc)) from None
    except PrefectHTTPStatusError as exc:
        code = exc.response.status_code
        why = " (its SQLite database is busy: PostgreSQL takes more at once)" if code == 503 else ""
        raise BadRequest(
            f"the Prefect API at {api_url()} answered {code} {exc.response.reason_phrase}{why}, "
            "also when asked again: try later"
        ) from None
    except UNANSWERED as exc:
        raise BadRequest(
            f"the Prefect API at {api_url()} did not answer in time ({type(exc).__name__}),"
            " also when asked again: try later"
        ) from None


def _run_id(text: str) -> UUID:
    try:
        return UUID(text.strip())
    except ValueError:
        raise BadRequest(f"{text!r} is not a flow run id (a UUID, as `covsweep submit` prints)") from None


def _read_run(client: SyncPrefectClient, text: str) -> FlowRun:
    run_id = _run_id(text)
    try:
        return client.read_flow_run(run_id)
    except ObjectNotFound:
        raise BadRequest(f"no flow run {run_id} at {api_url()}") from None


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def submit(parameters: dict[str, Any], priority: str) -> FlowRun:
    """A flow run of spec-to-production/default on the priority's work queue; returns at once."""
    with _client() as client:
        try:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            raise BadRequest(f"no deployment {DEPLOYMENT} at {api_url()}: run `make deploy`") from None
        return _create_run(client, deployment.id, parameters, priority)


def _create_run(client: SyncPrefectClient, deployment_id: UUID, parameters: dict[str, Any], priority: str) -> FlowRun:
    """Prefect's client waits 2, 4, ... 32 s between answers of 503: a burst of twenty submissions then
    takes minutes. A SQLite server refuses an insert only while another one commits, so ask again within
    a second at first, then less often (RETRY_FIRST_S to RETRY_LAST_S), for SUBMIT_PATIENCE_S. An answer
    that never came may hide a run that was made: one idempotency key for every attempt lets the server
    hand that run back instead of making a second."""
    deadline = time.monotonic() + SUBMIT_PATIENCE_S
    key = f"covsweep-submit-{uuid4()}"
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
        for attempt in itertools.count():
            try:
                return client.create_flow_run_from_deployment(
                    deployment_id,
                    parameters=parameters,
                    work_queue_name=priority,
                    tags=["covsweep", f"priority:{priority}"],
                    idempotency_key=key,
                )
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 503 or _patience_spent(attempt, deadline):
                    raise
            except UNANSWERED:
                if _patience_spent(attempt, deadline):
                    raise
            bound = min(RETRY_LAST_S, RETRY_FIRST_S * 2**attempt)
            time.sleep(random.uniform(bound / 2, bound))


def _patience_spent(attempt: int, deadline: float) -> bool:
    """Asked at least twice, and for SUBMIT_PATIENCE_S: a first answer slow enough to use it all up
    (a loaded host, a server busy for that long) still gets one more try."""
    return attempt > 0 and time.monotonic() > deadline


@dataclass
class ModuleRow:
    module: str
    state: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunStatus:
    run: FlowRun
    progress: float | None = None
    modules: list[ModuleRow] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)
    subflows: list[tuple[str, str, str]] = field(default_factory=list)  # target, state, run id


def _artifacts(client: SyncPrefectClient, run_id: UUID) -> dict[str, Any]:
    """The run's artifacts by key, the latest of each."""
    found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    found.sort(key=lambda a: a.created or datetime.min.replace(tzinfo=UTC))
    return {a.key: a for a in found if a.key}


def _table_rows(artifact: Any) -> dict[str, dict[str, Any]]:
    data = artifact.data if artifact is not None else None
    rows = json.loads(data) if isinstance(data, str) else (data or [])
    return {row["module"]: row for row in rows if isinstance(row, dict) and "module" in row}


def status(run_id: str) -> RunStatus:
    with _client() as client:
        run = _read_run(client, run_id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        artifacts = _artifacts(client, run.id)
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])),
            sort=FlowRunSort.START_TIME_ASC,
        )
    progress = artifacts.get(PROGRESS_KEY)
    table = _table_rows(artifacts.get(MODULES_KEY))
    result = RunStatus(run=run, progress=float(progress.data) if progress and progress.data is not None else None)
    for task in sorted(tasks, key=lambda t: t.expected_start_time or t.created or datetime.min.replace(tzinfo=UTC)):
        state = task.state.name if task.state else "?"
        if task.name.startswith(MODULE_TASK_PREFIX):
            module = task.name[len(MODULE_TASK_PREFIX) :]
            result.modules.append(ModuleRow(module, state, table.get(module, {})))
        else:
            result.steps.append((re.sub(r"-[0-9a-f]{3}$", "", task.name), state))  # drop Prefect's run suffix
    known = {m.module for m in result.modules}
    result.modules += [ModuleRow(name, "Completed", row) for name, row in table.items() if name not in known]
    result.subflows = [
        (str(c.parameters.get("target", "?")), c.state.name if c.state else "?", str(c.id)) for c in children
    ]
    return result


def _finished_run(client: SyncPrefectClient, run_id: str, wait: bool, timeout: float, poll: float) -> FlowRun:
    """The run once it completed; RunNotDone when it is not final (and --wait gave up) or did not complete."""
    run = _read_run(client, run_id)
    deadline = time.monotonic() + timeout
    while not (run.state and run.state.is_final()):
        state = run.state.name if run.state else "not started"
        if not wait:
            raise RunNotDone(f"run {run.id} is {state}, not finished: use --wait")
        left = deadline - time.monotonic()
        if left <= 0:
            raise RunNotDone(f"run {run.id} is still {state} after {timeout:g}s")
        time.sleep(min(poll, left))
        run = client.read_flow_run(run.id)
    if not run.state.is_completed():
        why = first_line(run.state.message)
        raise RunNotDone(f"run {run.id} ended {run.state.name}" + (f": {why}" if why else ""))
    return run


def results(run_id: str, wait: bool = False, timeout: float = 3600.0, poll: float = 5.0) -> str:
    """The run's persisted report as JSON; --wait polls until the run is final or the timeout passes."""
    with _client() as client:
        run = _finished_run(client, run_id, wait, timeout, poll)
        try:
            return to_json(stored_result(run.state))
        except ResultUnavailable as exc:
            raise RunNotDone(f"run {run.id} completed but {exc}") from None


def patch(run_id: str, wait: bool = False, timeout: float = 3600.0, poll: float = 5.0) -> str:
    """The patch the run stored in result storage; RunNotDone when it has none."""
    with _client() as client:
        run = _finished_run(client, run_id, wait, timeout, poll)
        text = stored_patch(run.state, str(run.id))
    if text is None:
        raise RunNotDone(f"run {run.id} has no patch: it kept no test, or did not deliver as a patch")
    return text


@dataclass
class QueuedRun:
    run: FlowRun
    deployment: str
    priority: str

    @property
    def rank(self) -> int:
        return PRIORITIES.get(self.priority, len(PRIORITIES) + 1)


def _deployments(client: SyncPrefectClient) -> dict[UUID, str]:
    """covsweep's deployments as id -> flow/deployment."""
    flows = {f.id: f.name for f in client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS))))}
    if not flows:
        return {}
    found = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS))))
    return {d.id: f"{flows.get(d.flow_id, '?')}/{d.name}" for d in found}


def queue(finished: int = 10) -> list[QueuedRun]:
    """Runs of covsweep's deployments: every unfinished one that is due, the next scheduled one of each
    deployment, and the last `finished` finished ones."""
    with _client() as client:
        deployments = _deployments(client)
        if not deployments:
            return []
        by_deployment = FlowRunFilterDeploymentId(any_=list(deployments))
        open_runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=by_deployment, state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=FINAL))
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )
        done = (
            client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=by_deployment, state=FlowRunFilterState(type=FlowRunFilterStateType(any_=FINAL))
                ),
                sort=FlowRunSort.END_TIME_DESC,
                limit=finished,
            )
            if finished
            else []
        )
    now = datetime.now(UTC)
    shown, next_of = [], set()
    for run in open_runs:
        future = (
            run.state
            and run.state.type == StateType.SCHEDULED
            and run.expected_start_time
            and run.expected_start_time > now
        )
        if future:
            if run.deployment_id in next_of:
                continue  # a schedule's later runs say nothing more than its next one
            next_of.add(run.deployment_id)
        shown.append(run)
    rows = [QueuedRun(r, deployments.get(r.deployment_id, "?"), r.work_queue_name or "?") for r in shown + done]
    return sorted(rows, key=lambda q: (_state_order(q.run), q.rank, _when(q.run, now)))


STATE_ORDER = ["RUNNING", "CANCELLING", "PENDING", "PAUSED", "SCHEDULED", "FAILED", "CRASHED", "CANCELLED", "COMPLETED"]


def _when(run: FlowRun, now: datetime) -> float:
    """Waiting runs oldest first, finished ones latest first."""
    if run.state and run.state.is_final():
        return -(run.end_time or now).timestamp()
    return (run.expected_start_time or now).timestamp()


def _state_order(run: FlowRun) -> int:
    kind = run.state.type.value if run.state else "SCHEDULED"
    return STATE_ORDER.index(kind) if kind in STATE_ORDER else len(STATE_ORDER)
