"""`make postgres` (deployments/postgres/start.sh, stop.sh) on the test session's own cluster: a real
PostgreSQL from Debian's package, installed by the script where it is missing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.service_fixtures import DATABASE_SETTING, Postgres, postgres_query


def password(postgres: Postgres) -> str:
    passfile = Path(postgres.env["COVSWEEP_CACHE_DIR"]) / "postgres" / "passfile"
    assert passfile.stat().st_mode & 0o077 == 0  # the caller's alone
    host, port, database, role, secret = passfile.read_text().strip().split(":")
    assert (host, port, database, role) == ("127.0.0.1", "*", "*", "prefect")
    return secret


@pytest.fixture
def database_name(postgres: Postgres):
    name = f"covsweep_test_{uuid.uuid4().hex[:12]}"
    yield name
    url = postgres.database("prefect")
    postgres_query(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_make_postgres_twice_creates_once_then_only_prints_the_same_line(postgres, database_name):
    port = postgres.env["COVSWEEP_POSTGRES_PORT"]
    first, second = postgres.start(database_name), postgres.start(database_name)

    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout and len(first.stdout.splitlines()) == 1
    setting, url = first.stdout.strip().split("=", 1)
    assert setting == DATABASE_SETTING
    assert url.startswith(f"postgresql+asyncpg://prefect@127.0.0.1:{port}/{database_name}?passfile=/")
    assert f"created database {database_name}" in first.stderr
    assert f"created extension pg_trgm in {database_name}" in first.stderr
    assert second.stderr.splitlines() == [
        f"postgres: already running on 127.0.0.1:{port} ({postgres.env['COVSWEEP_CACHE_DIR']}/postgres/data)"
    ]
    secret = password(postgres)
    assert secret not in first.stdout + first.stderr + second.stdout + second.stderr

    [row] = postgres_query(
        url,
        "SELECT current_user, current_database(), current_setting('listen_addresses'),"
        " (SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm') AS trgm",
    )
    assert (row["current_user"], row["current_database"]) == ("prefect", database_name)
    assert row["current_setting"] == "127.0.0.1" and row["trgm"]


def login(url: str, user: str, password: str) -> None:
    """Over TCP with this password, no passfile."""
    dsn = make_url(url)

    async def connect() -> None:
        connection = await asyncpg.connect(
            host=dsn.host, port=dsn.port, user=user, password=password, database=dsn.database, passfile="/nonexistent"
        )
        await connection.close()

    asyncio.run(connect())


def test_only_the_password_of_the_passfile_lets_anyone_in_over_tcp(postgres):
    url = postgres.database("prefect")
    login(url, "prefect", password(postgres))
    for user, attempt in (("prefect", "not-the-password"), ("postgres", "postgres")):
        with pytest.raises(asyncpg.InvalidPasswordError):
            login(url, user, attempt)


def test_a_database_name_that_is_not_an_identifier_is_refused_in_one_line(postgres):
    refused = postgres.start("Prefect; DROP")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "postgres: error: database name 'Prefect; DROP': lowercase letters, digits and _ only"
    ]


def test_a_running_server_keeps_its_port_and_says_so(postgres):
    port = postgres.env["COVSWEEP_POSTGRES_PORT"]
    other = Postgres({**postgres.env, "COVSWEEP_POSTGRES_PORT": str(int(port) + 1)})
    refused = other.start()
    assert refused.returncode == 2 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"postgres: error: already running on port {port} ") and "make postgres-stop" in line


def test_stopped_and_started_again_it_keeps_its_databases(postgres, database_name):
    url = postgres.database(database_name)
    postgres_query(url, "CREATE TABLE kept (n int)")
    postgres.stop()
    assert "started on 127.0.0.1" in postgres.start().stderr
    assert postgres.database(database_name) == url
    assert postgres_query(url, "SELECT count(*) AS n FROM kept")[0]["n"] == 0
