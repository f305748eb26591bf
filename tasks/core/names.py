"""Names of the Prefect objects covsweep runs as a service with; prefect.yaml uses the same ones."""

from __future__ import annotations

MAIN_FLOW = "spec-to-production"
SWEEP_FLOW = "coverage-sweep"
FLOWS = (MAIN_FLOW, SWEEP_FLOW)

POOL = "covsweep"
DOCKER_POOL = "covsweep-docker"
POOL_TYPES = {POOL: "process", DOCKER_POOL: "docker"}

# Work queue name -> priority: 1 is pulled first when the pool's concurrency limit is reached.
PRIORITIES = {"critical": 1, "high": 2, "normal": 3, "low": 4}
DEFAULT_PRIORITY = "normal"

DEPLOYMENT = f"{MAIN_FLOW}/default"
TAG = "covsweep"  # on every deployment of prefect.yaml, so on every run they start
SILENT_RUN_AUTOMATION = "covsweep-crash-silent-runs"

# The block document a run reads: covsweep-llm/, covsweep-sandbox/, covsweep-cluster/default.
DEFAULT_BLOCK_NAME = "default"
GIT_TOKEN_BLOCK = "covsweep-git-token"  # a Prefect Secret block: the token for repository TARGETs over HTTPS
RESULTS_BLOCK = "covsweep-results"  # a local-file-system block; its slug is in prefect.yaml
# Prefect variables prefect.yaml reads when it is deployed: underscores, as its templates need.
TARGETS_VARIABLE = "covsweep_sweep_targets"
RESULTS_DIR_VARIABLE = "covsweep_results_dir"
CACHE_DIR_VARIABLE = "covsweep_cache_dir"
DOCKER_VOLUMES_VARIABLE = "covsweep_docker_volumes"

PATCH_KEY = "covsweep-patch"  # the artifact of a run delivered as a patch
PATCH_STORAGE_KEY = "{run_id}/covsweep.patch"  # the same patch in result storage, for `covsweep results --patch`
PROGRESS_KEY = "covsweep-progress"
MODULES_KEY = "covsweep-modules"
TREND_KEY = "covsweep-trend"
MODULE_TASK_PREFIX = "generate "  # tasks/generate.py names its task runs "generate {module path}"
# Global concurrency limit `covsweep-llm-spend-<run id>`: a run's LLM spend across workers, made and
# deleted by the run (tasks.llm.spend.SharedSpend).
LLM_SPEND_PREFIX = "covsweep-llm-spend-"
