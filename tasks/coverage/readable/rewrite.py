"""Accepted tests, whatever wrote them, as a person would write them; what each test does is unchanged."""

from __future__ import annotations

from collections.abc import Collection

import libcst as cst
from pydantic import BaseModel, Field

from tasks.core.models import Module
from tasks.coverage.readable.formatting import ruff_format
from tasks.coverage.readable.imports import bindings_of, tidy_imports
from tasks.coverage.readable.modules import rewrite_aliases
from tasks.coverage.readable.naming import name_tests
from tasks.coverage.readable.syntax import module_names, snake
from tasks.coverage.readable.tautologies import remove_tautologies
from tasks.coverage.readable.variables import name_variables
from tasks.project.style import ProjectStyle

GENERATOR_HEADERS = ("pynguin",)  # a generator's own header comment: the file is no longer its raw output


class Rewritten(BaseModel):
    source: str
    renames: dict[str, str] = Field(default_factory=dict, description="old test name -> new, `Class.test` in classes")


def _project_names(tree: cst.Module, packages: set[str]) -> set[str]:
    """Module-level names bound to the project's code: what a test's calls exercise."""
    found: set[str] = set()
    for statement in tree.body:
        for binding in bindings_of(statement) or []:
            if binding.section(packages) == "first_party":
                found.add(binding.bound)
    return found


def _without_generator_header(tree: cst.Module) -> cst.Module:
    header = [
        line
        for line in tree.header
        if not (line.comment and any(word in line.comment.value.lower() for word in GENERATOR_HEADERS))
    ]
    return tree.with_changes(header=header)


def rewrite(source: str, *, module: Module, style: ProjectStyle, keep: Collection[str] = ()) -> Rewritten:
    """`source` with readable test names, the project's imports, named variables, no assertion that
    cannot fail, formatted; the tests named in `keep` (qualified: `test_x`, `TestY.test_z`) as they are.
    Source that does not parse comes back as it is."""
    try:
        cst.parse_module(source)
    except cst.ParserSyntaxError:
        return Rewritten(source=source)
    kept, packages = set(keep), set(style.packages)
    text = rewrite_aliases(source, style, module.dotted, kept)
    tree = remove_tautologies(cst.parse_module(text), kept)
    tree = cst.parse_module(name_variables(tree.code, module_names(tree), kept))
    fallback = snake(module.dotted.rsplit(".", 1)[-1])
    tree, renames = name_tests(tree, _project_names(tree, packages), fallback, kept)
    text = tidy_imports(_without_generator_header(tree).code, packages)
    return Rewritten(source=ruff_format(text, style.line_length), renames=renames)
