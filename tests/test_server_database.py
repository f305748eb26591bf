"""`make server` and its database (deployments/server_database.py): SQLite by default, the PostgreSQL
that PREFECT_API_DATABASE_CONNECTION_URL names when it is set, migrated from empty at the first start."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import REPO
from tests.helpers import free_port
from tests.service_fixtures import DATABASE_SETTING, postgres_query, start_process, stop


def server_env(home, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **settings}


def says(env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "deployments/server_database.py"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_without_the_setting_the_server_says_it_uses_sqlite_in_its_prefect_home(tmp_path):
    said = says(server_env(tmp_path))
    assert said.returncode == 0 and said.stdout == ""
    assert said.stderr.splitlines() == [
        f"server: database SQLite {tmp_path}/prefect.db"
        " (one write at a time; for many submissions at once see `make postgres`)"
    ]


def test_a_postgresql_that_does_not_answer_stops_the_server_with_one_line(tmp_path):
    closed = free_port()  # bound and released: nothing listens there now
    url = f"postgresql+asyncpg://prefect@127.0.0.1:{closed}/prefect?passfile=/nowhere"
    said = says(server_env(tmp_path, **{DATABASE_SETTING: url}))
    assert said.returncode == 2 and said.stdout == ""
    assert said.stderr.splitlines() == [
        f"server: error: PostgreSQL prefect@127.0.0.1:{closed}/prefect ({DATABASE_SETTING}) does not answer:"
        " start it with `make postgres`"
    ]


@pytest.mark.server
def test_make_server_migrates_an_empty_postgresql_database_and_serves_from_it(tmp_path, postgres_database):
    assert postgres_query(postgres_database, "SELECT to_regclass('flow_run') AS t")[0]["t"] is None  # empty
    port = free_port()
    log = tmp_path / "make-server.log"
    env = server_env(tmp_path / "home", **{DATABASE_SETTING: postgres_database})
    server = start_process(["make", "-s", "server", f"PREFECT_PORT={port}"], env, log)
    try:
        deadline = time.monotonic() + 180
        while not healthy(port):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        created = httpx.post(f"http://127.0.0.1:{port}/api/flows/", json={"name": "on-postgresql"}, timeout=30)
        assert created.status_code in (200, 201), created.text
    finally:
        stop(server)

    database = postgres_query(postgres_database, "SELECT current_database() AS name")[0]["name"]
    assert (
        log.read_text().splitlines()[0]
        == f"server: database PostgreSQL prefect@{host_port(postgres_database)}/{database}"
    )
    assert [r["name"] for r in postgres_query(postgres_database, "SELECT name FROM flow")] == ["on-postgresql"]
    assert postgres_query(postgres_database, "SELECT version_num FROM alembic_version")  # migrated to a version
    assert not (tmp_path / "home" / "prefect.db").exists()  # and nothing went to SQLite


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def host_port(url: str) -> str:
    return url.split("@", 1)[1].split("/", 1)[0]
