"""--deliver patch|branch in one call: what the report's `delivery` says, and the patch's text."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from tasks.core.errors import InputError
from tasks.core.models import Delivery, Report
from tasks.core.names import PATCH_KEY
from tasks.core.plan import Plan
from tasks.core.settings import Settings
from tasks.delivery.branch import commit_message, push_branch
from tasks.delivery.patch import make_patch
from tasks.project.remote import is_repository_url, redact
from tasks.project.source import push_url

PATCH_FILE = "covsweep.patch"


def deliver(
    kind: Literal["patch", "branch"],
    repo: Path,
    base: str,
    out: Path,
    *,
    files: list[Path] | None = None,
    patch_file: Path | None = None,
    url: str | None = None,
    branch: str | None = None,
    message: str = "",
    settings: Settings | None = None,
) -> tuple[Delivery, str | None]:
    """(the report's `delivery`, the patch text or None). A patch is written to `patch_file` when one is
    given; a branch needs `url`, `branch` and `message`. Nothing kept: the delivery names no patch, no
    branch and no commit."""
    if kind == "patch":
        text = make_patch(repo, base, out, files)
        if text is None or patch_file is None:
            return Delivery(kind="patch"), text
        patch_file.parent.mkdir(parents=True, exist_ok=True)
        patch_file.write_text(text)
        return Delivery(kind="patch", patch=str(patch_file)), text
    if not url or not branch:
        raise ValueError("--deliver branch needs the remote's URL and the branch name")
    pushed = push_branch(repo, base, out, url, branch, message, files=files, settings=settings)
    if pushed is None:
        return Delivery(kind="branch"), None
    return Delivery(kind="branch", branch=pushed.branch, commit=pushed.commit), None


class Delivered(BaseModel):
    """A run's report with its `source` and `delivery`, and what else a user gets."""

    report: Report
    patch: str | None = None  # the patch's text: written beside the report, stored, shown as an artifact
    refused: str | None = None  # why the branch was not pushed; the tests are in the patch instead


def _patch_file(plan: Plan) -> Path | None:
    """Beside the report (`covsweep run` puts that in ./.covsweep for a repository); none when the report
    is in result storage only."""
    return plan.report.parent / PATCH_FILE if plan.report is not None else None


def _as_patch(plan: Plan) -> tuple[Delivery, str | None]:
    patch_file = _patch_file(plan)
    delivery, text = deliver("patch", plan.repo, plan.source.commit, plan.out, patch_file=patch_file)
    if text is None and patch_file is not None:
        patch_file.unlink(missing_ok=True)  # an earlier run's patch beside this report would pass for this one's
    return delivery, text


def _as_branch(plan: Plan, report: Report, settings: Settings | None) -> Delivered:
    """The branch pushed; refused, the tests are delivered as a patch instead, and `refused` says why."""
    try:
        delivery, _ = deliver(
            "branch",
            plan.repo,
            plan.source.commit,
            plan.out,
            url=push_url(plan.options.target, plan.source),
            branch=plan.branch,
            message=commit_message(report.modules, plan.run_id),
            settings=settings,
        )
    except InputError as exc:
        patch, text = _as_patch(plan)
        kept = f"the tests are in {patch.patch}" if patch.patch else f"the tests are in the artifact {PATCH_KEY}"
        delivery = Delivery(kind="branch", patch=patch.patch)
        return Delivered(report=report.model_copy(update={"delivery": delivery}), patch=text, refused=f"{exc}; {kept}")
    return Delivered(report=report.model_copy(update={"delivery": delivery}))


def deliver_run(plan: Plan, report: Report, settings: Settings | None = None) -> Delivered:
    """The run's accepted tests delivered as its plan says: written already (write), a patch, or a
    pushed branch; the report gets its `source` and `delivery`, and a repository's URL as its target."""
    target = redact(plan.options.target) if is_repository_url(plan.options.target) else report.target
    report = report.model_copy(update={"source": plan.source, "target": target})
    if plan.deliver == "write":
        return Delivered(report=report.model_copy(update={"delivery": Delivery(kind="write")}))
    if plan.deliver == "branch":
        return _as_branch(plan, report, settings)
    delivery, text = _as_patch(plan)
    return Delivered(report=report.model_copy(update={"delivery": delivery}), patch=text)
