"""Modules no generator could handle: a markdown artifact for a person to look at."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import MissingContextError

from tasks.core.errors import ModuleError
from tasks.core.models import ErrorInfo, ModuleResult


class NeedsReview(ModuleError):
    """Every LLM model failed, and Pynguin after them."""

    def __init__(self, llm: ErrorInfo, pynguin: ErrorInfo):
        super().__init__(llm.type, llm.message)
        self.llm, self.pynguin = llm, pynguin


def publish_review(module: str, result: ModuleResult, exc: NeedsReview) -> None:
    rows = "\n".join(f"| {a.model} | {a.outcome} | {a.duration_s:.1f} |" for a in result.metadata.attempts)
    markdown = "\n".join(
        [
            f"# covsweep: `{module}` needs review",
            "",
            "No generator produced tests for this module.",
            "",
            f"- LLM: **{exc.llm.type}**: {exc.llm.message}",
            f"- Pynguin: **{exc.pynguin.type}**: {exc.pynguin.message}",
            "",
            "| model | outcome | seconds |",
            "| --- | --- | --- |",
            rows,
        ]
    )
    key = "covsweep-review-" + re.sub(r"[^a-z0-9]+", "-", module.lower()).strip("-")
    try:
        create_markdown_artifact(key=key, markdown=markdown, description=f"{module} needs review")
    except MissingContextError:
        pass  # outside a flow run there is no UI to show it in
