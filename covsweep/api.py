"""A client of the configured Prefect server, or one clear reason why there is none."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import get_current_settings


class NoServer(Exception):
    """No Prefect server to talk to: the user has to start one or point PREFECT_API_URL at it."""


def api_url() -> str | None:
    # Prefect's own settings: the environment, then the active profile.
    return get_current_settings().api.url


@contextmanager
def connect(local_ok: bool = False) -> Iterator[SyncPrefectClient]:
    """With `local_ok`, and no URL, the local database `covsweep run` wrote its runs to."""
    url = api_url()
    if not url and local_ok:
        with get_client(sync_client=True) as client:
            yield client
        return
    if not url:
        # Without a URL Prefect would start a throwaway server that no worker ever polls.
        raise NoServer(
            "PREFECT_API_URL is not set: start a server with `make server`, "
            "then export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
        if problem is not None:
            raise NoServer(
                f"the Prefect API at {url} is not reachable ({type(problem).__name__}); start it with `make server`"
            )
        yield client
