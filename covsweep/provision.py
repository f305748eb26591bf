"""What prefect.yaml needs on the server before it is deployed: pools, queues, blocks, variables.

Every step creates what is missing and leaves what exists, so it can run any number of times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    VariableCreate,
    VariableUpdate,
    WorkPoolCreate,
)
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectNotFound

from blocks.cluster import CovsweepCluster
from blocks.llm import CovsweepLLM
from blocks.sandbox import CovsweepSandbox
from blocks.saved import load_saved
from tasks.core.names import (
    CACHE_DIR_VARIABLE,
    DEFAULT_BLOCK_NAME,
    DOCKER_VOLUMES_VARIABLE,
    GIT_TOKEN_BLOCK,
    POOL_TYPES,
    PRIORITIES,
    RESULTS_BLOCK,
    RESULTS_DIR_VARIABLE,
    SILENT_RUN_AUTOMATION,
    TAG,
    TARGETS_VARIABLE,
)
from tasks.core.settings import Settings
from tasks.project.remote import is_repository_url
from tasks.sweep import check_targets

Say = Callable[[str], None]


def _base_job_template(kind: str) -> dict[str, Any]:
    if kind == "docker":
        from prefect_docker.worker import DockerWorker

        return DockerWorker.get_default_base_job_template()
    from prefect.workers.process import ProcessWorker

    return ProcessWorker.get_default_base_job_template()


def ensure_pools(client: SyncPrefectClient, settings: Settings, say: Say) -> None:
    for name, kind in POOL_TYPES.items():
        try:
            pool = client.read_work_pool(name)
            say(f"work pool {name} ({pool.type}): exists")
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=kind,
                    base_job_template=_base_job_template(kind),
                    concurrency_limit=settings.pool_concurrency,
                    description=f"covsweep flow runs ({kind}); queues critical, high, normal, low by priority",
                )
            )
            say(f"work pool {name} ({kind}): created, {settings.pool_concurrency} runs at once")


def ensure_queues(client: SyncPrefectClient, say: Say) -> None:
    for pool in POOL_TYPES:
        existing = {q.name: q for q in client.read_work_queues(work_pool_name=pool)}
        for name, priority in PRIORITIES.items():
            queue = existing.get(name)
            if queue is None:
                client.create_work_queue(name=name, priority=priority, work_pool_name=pool)
                say(f"queue {pool}/{name} (priority {priority}): created")
            elif queue.priority != priority:
                client.update_work_queue(queue.id, priority=priority)
                say(f"queue {pool}/{name}: priority {queue.priority} -> {priority}")
        if all(name in existing for name in PRIORITIES):
            say(f"queues {pool}/{{{','.join(PRIORITIES)}}}: exist")


def ensure_results_block(settings: Settings, say: Say) -> Path:
    """The local-file-system block deployed runs persist their reports to; its path is returned."""
    from prefect.filesystems import LocalFileSystem

    try:
        block = LocalFileSystem.load(RESULTS_BLOCK)
        say(f"block local-file-system/{RESULTS_BLOCK}: exists, {block.basepath}")
    except ValueError:  # what Block.load raises for a missing document
        path = settings.results_path()
        path.mkdir(parents=True, exist_ok=True)
        block = LocalFileSystem(basepath=str(path))
        block.save(RESULTS_BLOCK)
        say(f"block local-file-system/{RESULTS_BLOCK}: created, {path}")
    return Path(block.basepath)


def ensure_default_blocks(say: Say) -> None:
    """Save a default document of each covsweep block type that has none yet."""
    for cls in (CovsweepLLM, CovsweepSandbox, CovsweepCluster):
        cls.register_type_and_schema()
        if load_saved(cls, DEFAULT_BLOCK_NAME) is not None:
            say(f"block {cls.get_block_type_slug()}/{DEFAULT_BLOCK_NAME}: exists")
        else:
            cls().save(DEFAULT_BLOCK_NAME)
            say(f"block {cls.get_block_type_slug()}/{DEFAULT_BLOCK_NAME}: created with defaults")


def _set_variable(client: SyncPrefectClient, name: str, value: Any, overwrite: bool = True) -> Any:
    """The variable's value afterwards; an existing one is kept unless overwrite."""
    current = client.read_variable_by_name(name)
    if current is None:
        client.create_variable(VariableCreate(name=name, value=value))
        return value
    if overwrite and current.value != value:
        client.update_variable(VariableUpdate(name=name, value=value))
        return value
    return current.value


def sweep_targets(wanted: list[str]) -> list[str]:
    """Directories resolved here (the worker is on this host), repository URLs as they are; a URL
    carrying a token is refused: variables are stored and shown in the UI."""
    check_targets(wanted)
    return [t if is_repository_url(t) else str(Path(t).expanduser().resolve()) for t in wanted]


def ensure_variables(client: SyncPrefectClient, settings: Settings, results: Path, say: Say) -> None:
    """The values prefect.yaml templates in: sweep targets, and the Docker deployment's paths."""
    wanted = settings.sweep_target_list()
    targets = sweep_targets(wanted) if wanted is not None else []
    targets = _set_variable(client, TARGETS_VARIABLE, targets, overwrite=wanted is not None)
    say(f"variable {TARGETS_VARIABLE}: {targets or 'none (the nightly sweep has nothing to do)'}")
    cache = str(settings.cache_dir.expanduser().resolve())
    _set_variable(client, RESULTS_DIR_VARIABLE, str(results))
    _set_variable(client, CACHE_DIR_VARIABLE, cache)
    # Sandboxes are started on the host's daemon, so every path they mount must be the same inside.
    mounts = ["/var/run/docker.sock", str(results), cache, *(t for t in targets if not is_repository_url(t))]
    _set_variable(client, DOCKER_VOLUMES_VARIABLE, [f"{p}:{p}" for p in dict.fromkeys(mounts)])


def ensure_git_token_block(settings: Settings, say: Say) -> None:
    """COVSWEEP_GIT_TOKEN, when it is set here, saved as the Secret block the workers read a token from."""
    if settings.git_token is None or not settings.git_token.get_secret_value():
        return
    from prefect.blocks.system import Secret

    Secret(value=settings.git_token.get_secret_value()).save(GIT_TOKEN_BLOCK, overwrite=True)
    say(f"block secret/{GIT_TOKEN_BLOCK}: saved from COVSWEEP_GIT_TOKEN")


def silent_run_automation(silent_s: int) -> AutomationCore:
    """Deployed runs send a heartbeat every 30 s (prefect.yaml). A run whose processes died with their host
    sends none, and nothing else would end it: it would stay Running and hold a slot of its pool forever."""
    return AutomationCore(
        name=SILENT_RUN_AUTOMATION,
        description=f"Mark a covsweep flow run Crashed after {silent_s} s without a heartbeat.",
        trigger=EventTrigger(
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification({"prefect.resource.id": f"prefect.tag.{TAG}"}),
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                *(f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Cancelled", "Crashed")),
            },
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silent_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED, message=f"no heartbeat for {silent_s} s: its host or container is gone"
            )
        ],
    )


def ensure_silent_run_automation(client: SyncPrefectClient, settings: Settings, say: Say) -> None:
    wanted = silent_run_automation(settings.silent_run_s)
    found = client.read_automations_by_name(SILENT_RUN_AUTOMATION)
    if not found:
        client.create_automation(wanted)
        say(f"automation {SILENT_RUN_AUTOMATION}: created, runs silent for {settings.silent_run_s} s crash")
    elif found[0].trigger.within != wanted.trigger.within:
        client.update_automation(found[0].id, wanted)
        say(f"automation {SILENT_RUN_AUTOMATION}: runs silent for {settings.silent_run_s} s crash")
    else:
        say(f"automation {SILENT_RUN_AUTOMATION}: exists")


def provision(client: SyncPrefectClient, settings: Settings, say: Say) -> None:
    ensure_pools(client, settings, say)
    ensure_queues(client, say)
    results = ensure_results_block(settings, say)
    ensure_default_blocks(say)
    ensure_git_token_block(settings, say)
    ensure_variables(client, settings, results, say)
    ensure_silent_run_automation(client, settings, say)
