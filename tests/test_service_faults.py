"""covsweep as a service under faults: a busy or silent API, a server restarted. A real server, a real
process worker and the real sandbox (tests/service_fixtures.py), except for the busy API, which is
scripted. Lost workers and hosts: test_service_lost_host.py; bursts of submissions: test_service_load.py."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from covsweep import service as covsweep_service
from tests.conftest import EXAMPLE
from tests.helpers import run_cli
from tests.service_fixtures import (
    Service,
    api,
    read_report,
    submit,
    wait_for_report,
)

pytestmark = pytest.mark.docker


class BusyAPI(BaseHTTPRequestHandler):
    """A Prefect API whose database is locked for the first `busy_for` flow runs it is asked to create."""

    busy_for = 0
    slow_for = 0  # then the next creates answer only after the client has given up on them
    creates: list[int] = []  # the status of each answer to a create
    keys: list[str | None] = []  # the idempotency key each create was sent with
    deployment = {"id": str(uuid.uuid4()), "name": "default", "flow_id": str(uuid.uuid4())}

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a slow answer: the client gave up waiting for it

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/api/health":
            self._answer(200, True)
        elif self.path == "/api/deployments/name/spec-to-production/default":
            self._answer(200, self.deployment)
        else:
            self._answer(404, {"detail": "not here"})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if not self.path.endswith("/create_flow_run"):
            return self._answer(404, {"detail": "not here"})
        self.keys.append(body.get("idempotency_key"))
        # Counted as it arrives: a retry may come while the slow answer before it is still pending.
        index = len(self.creates)
        status = 503 if index < self.busy_for else 201
        self.creates.append(status)
        if self.busy_for <= index < self.busy_for + self.slow_for:
            time.sleep(SLOW_ANSWER_S)
        self._answer(
            status,
            {"exception_message": "Service Unavailable"}
            if status == 503
            else {"id": str(uuid.uuid4()), "flow_id": self.deployment["flow_id"], "name": "busy-bee"},
        )

    def log_message(self, *args):
        pass


SLOW_ANSWER_S = 3.0


@pytest.fixture
def busy_api(monkeypatch):
    monkeypatch.setattr(BusyAPI, "creates", [])
    monkeypatch.setattr(BusyAPI, "keys", [])
    server = ThreadingHTTPServer(("127.0.0.1", 0), BusyAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{server.server_address[1]}/api"}):
            yield BusyAPI
    finally:
        server.shutdown()


def test_submit_asks_a_busy_server_again_without_backing_off_for_minutes(busy_api, monkeypatch):
    monkeypatch.setattr(busy_api, "busy_for", 3)
    started = time.monotonic()
    run = covsweep_service.submit({"target": str(EXAMPLE)}, "normal")
    assert run.name == "busy-bee" and busy_api.creates == [503, 503, 503, 201]
    assert time.monotonic() - started < 15  # Prefect's own backoff alone would wait 2 + 4 + 8 s


def test_submit_asks_a_slow_server_again_with_the_same_idempotency_key(busy_api, monkeypatch):
    from prefect.settings import PREFECT_API_REQUEST_TIMEOUT

    monkeypatch.setattr(busy_api, "busy_for", 1)
    monkeypatch.setattr(busy_api, "slow_for", 1)
    with temporary_settings({PREFECT_API_REQUEST_TIMEOUT: SLOW_ANSWER_S / 3}):
        run = covsweep_service.submit({"target": str(EXAMPLE)}, "normal")
    assert run.name == "busy-bee" and len(busy_api.creates) == 3
    # The answer that came too late may have made a run: the key lets the server give that one back.
    assert busy_api.keys[0] and len(set(busy_api.keys)) == 1


def test_submit_to_a_server_that_never_answers_says_so_in_one_line(busy_api, monkeypatch, capsys):
    from prefect.settings import PREFECT_API_REQUEST_TIMEOUT

    from covsweep import cli

    monkeypatch.setattr(busy_api, "slow_for", 1000)
    monkeypatch.setattr(covsweep_service, "SUBMIT_PATIENCE_S", 1.0)
    with temporary_settings({PREFECT_API_REQUEST_TIMEOUT: SLOW_ANSWER_S / 3}), pytest.raises(SystemExit) as exit_status:
        cli.main(["submit", str(EXAMPLE), "--generator", "none"])
    assert exit_status.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert "did not answer in time" in err and "try later" in err


def test_submit_to_a_server_busy_for_too_long_says_so_in_one_line(busy_api, monkeypatch, capsys):
    from covsweep import cli

    monkeypatch.setattr(busy_api, "busy_for", 1000)
    monkeypatch.setattr(covsweep_service, "SUBMIT_PATIENCE_S", 3.0)
    with pytest.raises(SystemExit) as exit_status:
        cli.main(["submit", str(EXAMPLE), "--generator", "none"])
    assert exit_status.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert "answered 503 Service Unavailable" in err and "try later" in err
    # Asked again however slow the first answer was, then after at least 0.5, 1 and 2 s: not hammered.
    assert 2 <= len(busy_api.creates) < 5


def completed_reports(service: Service) -> dict[str, dict]:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with api(service) as client:
        done = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
            limit=200,
        )
    return {str(r.id): read_report(service, str(r.id)) for r in done if r.deployment_id}


def test_server_restart_loses_no_report(service, example):
    run_id = submit(service, example)
    report = wait_for_report(service, run_id)
    before = completed_reports(service)  # this run's, and those of every earlier test of the module
    assert before[run_id] == report

    service.stop_server()
    down = run_cli("results", run_id, env=service.env)
    assert down.returncode == 2 and "not reachable" in down.stderr
    service.start_server()  # same port, same PREFECT_HOME: the same SQLite database

    again = run_cli("results", run_id, env=service.env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == report
    after = completed_reports(service)
    assert {run: after.get(run) for run in before} == before
    # The worker rode out the outage: the service takes new work without being restarted.
    assert service.worker.poll() is None, service.worker_log.read_text()[-3000:]
    assert wait_for_report(service, submit(service, example))["totals"]["failed"] == 0
