"""The options of `covsweep run` and `submit`, derived from RunOptions: its fields are the one definition."""

from __future__ import annotations

import argparse
import types
import typing
from typing import Literal

from pydantic.fields import FieldInfo

from tasks.core.options import RunOptions

# The headings of `covsweep run --help`; every RunOptions field is under exactly one (a test checks).
GROUPS: dict[str, tuple[str, ...]] = {
    "what to run on": ("modules", "ref"),
    "generation": (
        "generator",
        "coverage_target",
        "max_iterations",
        "reruns",
        "framework",
        "mutation",
        "mutants",
        "mutation_target",
    ),
    "limits": ("concurrency", "timeout", "budget_usd", "sandbox", "cluster"),
    "LLM": ("models", "llm_base_url"),
    "output": ("out", "report", "deliver", "branch", "summary_md"),
    "CI": ("changed_since", "fail_under", "fail_under_diff"),
}
METAVARS = {
    "modules": "GLOB",
    "models": "A,B,C",
    "llm_base_url": "URL",
    "budget_usd": "X",
    "timeout": "S",
    "out": "DIR",
    "report": "FILE",
    "summary_md": "FILE",
    "coverage_target": "PCT",
    "mutation_target": "PCT",
    "fail_under": "PCT",
    "fail_under_diff": "PCT",
    "ref": "REF",
    "changed_since": "REF",
    "branch": "NAME",
    "cluster": "ADDRESS",
}


def _choices(annotation) -> list[str] | None:
    """The values of a Literal field (also inside `X | None`)."""
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if choices := _choices(arg):
                return choices
    return None


def _metavar(name: str, field: FieldInfo) -> str:
    if name in METAVARS:
        return METAVARS[name]
    return "N" if "int" in str(field.annotation) else "X"


def _help(field: FieldInfo) -> str:
    default = field.get_default()
    shown = "" if default is None else f" [{default:g}]" if isinstance(default, float) else f" [{default}]"
    return (field.description or "") + shown


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """TARGET and one option per RunOptions field, grouped; values are checked by RunOptions, not here,
    so that a bad one is one error line naming its option."""
    target = RunOptions.model_fields["target"]
    parser.add_argument("target", metavar="TARGET", help=target.description)
    for title, names in GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            field = RunOptions.model_fields[name]
            flag = "--" + name.replace("_", "-")
            if choices := _choices(field.annotation):
                group.add_argument(flag, choices=choices, help=_help(field))
            elif name == "modules":
                group.add_argument(
                    flag, action="append", metavar=_metavar(name, field), help=_help(field) + " (repeatable)"
                )
            else:
                group.add_argument(flag, metavar=_metavar(name, field), help=_help(field))


def given(args: argparse.Namespace) -> dict[str, object]:
    """The options the user gave: RunOptions supplies the defaults of the others."""
    return {name: value for name in RunOptions.model_fields if (value := getattr(args, name, None)) is not None}
