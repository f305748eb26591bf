"""The LLM generator for one module round: the prompt, the fallback chain, a checked test file."""

from __future__ import annotations

import ast

from tasks.core.models import FileCoverage, Framework, Module, Mutant, ProjectRef
from tasks.llm.answers import extract_test_source, known_modules
from tasks.llm.fallback import LLMGenerated, RetryPolicy, complete_with_fallback
from tasks.llm.prompts import initial_messages, refinement_message
from tasks.llm.session import LLMSession
from tasks.project.imports import top_level_names


def _trim(conversation: list[dict[str, str]]) -> list[dict[str, str]]:
    """system + first prompt + the last answer: earlier rounds' files are not needed any more."""
    head = conversation[:2]
    last = [m for m in conversation[2:] if m.get("role") == "assistant"][-1:]
    return head + last


def _top_level_imports(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def generate_with_llm(
    session: LLMSession,
    project: ProjectRef,
    module: Module,
    coverage: FileCoverage,
    *,
    timeout: float,
    conversation: list[dict[str, str]] | None = None,
    failures: str = "",
    kept: list[str] | None = None,
    policy: RetryPolicy | None = None,
    changed_lines: list[int] | None = None,
    framework: Framework = "pytest",
    survivors: list[Mutant] | None = None,
) -> LLMGenerated:
    """One round of LLM tests for `module`.

    First round: conversation=None, coverage = the baseline. Later rounds: the previous result's
    `conversation`, coverage with what the kept tests execute now, and the filter's output as
    `failures`, and the mutants the kept tests let through as `survivors`. With `changed_lines`
    (--changed-since) the prompts list the change's missed lines first; with framework unittest they ask
    for TestCase classes. Raises LLMGenerationError (a ModuleError: authentication, budget, timeout,
    connection, rate_limit or invalid_response) when no model gave a usable answer."""
    source = module.file.read_text(encoding="utf-8", errors="replace")
    if conversation:
        refinement = refinement_message(
            module, coverage, failures, kept=kept, source=source, changed_lines=changed_lines, survivors=survivors
        )
        messages = _trim(conversation) + [refinement]
    else:
        messages = initial_messages(
            project, module, coverage, source=source, changed_lines=changed_lines, framework=framework
        )
    allowed = _top_level_imports(source)
    known = known_modules(top_level_names(project.import_root), allowed)

    def accept(text: str) -> str:
        return extract_test_source(text, allowed=allowed, known=known)

    return complete_with_fallback(session, messages, accept=accept, timeout=timeout, policy=policy, label=module.path)
