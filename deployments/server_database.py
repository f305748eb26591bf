"""`make server`, before the server starts: says on stderr which database it will use, from Prefect's own
setting (PREFECT_API_DATABASE_CONNECTION_URL, else SQLite in PREFECT_HOME), and stops with one line
when the PostgreSQL it names does not answer, instead of the server's traceback."""

from __future__ import annotations

import socket
import sys

from prefect.settings import get_current_settings
from sqlalchemy.engine import URL, make_url

SQLITE_ADVICE = "one write at a time; for many submissions at once see `make postgres`"


def configured_database() -> URL:
    secret = get_current_settings().server.database.connection_url
    return make_url(secret.get_secret_value() if secret is not None else "")


def describe(url: URL) -> str:
    """The database without its password or connection options."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite {url.database} ({SQLITE_ADVICE})"
    user = f"{url.username}@" if url.username else ""
    return f"PostgreSQL {user}{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def answers(url: URL, timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((url.host or "localhost", url.port or 5432), timeout=timeout):
            return True
    except OSError:
        return False


def main() -> int:
    url = configured_database()
    if url.get_backend_name() == "postgresql" and not answers(url):
        print(
            f"server: error: {describe(url)} (PREFECT_API_DATABASE_CONNECTION_URL) does not answer:"
            " start it with `make postgres`",
            file=sys.stderr,
        )
        return 2
    print(f"server: database {describe(url)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
