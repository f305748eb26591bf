"""RunOptions is the one definition of a run's options: the flows' parameters and the command line's
groups are checked against it here, so that a copy that drifts fails a fast test."""

from __future__ import annotations

import inspect
import typing
from typing import Annotated, Literal

import pytest
from pydantic import Field, TypeAdapter
from pydantic_core import PydanticUndefined

from covsweep.arguments import GROUPS
from flows.coverage_sweep import coverage_sweep
from flows.spec_to_production import spec_to_production
from tasks.core.options import RunOptions

# The groups whose options the nightly sweep passes on to each target's run, with --deliver; it has two of its own.
SWEEP_GROUPS = ("generation", "limits", "LLM", "CI")
SWEEP_ALSO = ("deliver",)
SWEEP_OWN = {"targets", "history"}


def schema(annotation) -> dict:
    """What a value must be: its type, choices and bounds, as Prefect validates it and its UI shows it."""
    return TypeAdapter(annotation).json_schema()


def disagreements(fn, names) -> list[str]:
    """How the parameters `names` of `fn` differ from the RunOptions fields of the same names."""
    hints = typing.get_type_hints(fn, include_extras=True)
    parameters = inspect.signature(fn).parameters
    found = []
    for name in names:
        if name not in parameters:
            found.append(f"{name}: not a parameter")
            continue
        field = RunOptions.model_fields[name]
        default = parameters[name].default
        expected = None if field.default is PydanticUndefined else field.default
        if (default is inspect.Parameter.empty) != (field.default is PydanticUndefined) or (
            default is not inspect.Parameter.empty and default != expected
        ):
            found.append(f"{name}: default {default!r}, RunOptions has {field.default!r}")
        if schema(hints[name]) != schema(field.rebuild_annotation()):
            found.append(f"{name}: {schema(hints[name])}, RunOptions has {schema(field.rebuild_annotation())}")
    return found


def test_the_flow_takes_every_option_as_a_parameter_of_the_same_name_type_and_default():
    parameters = list(inspect.signature(spec_to_production.fn).parameters)
    assert parameters == list(RunOptions.model_fields)
    assert disagreements(spec_to_production.fn, RunOptions.model_fields) == []


def test_the_sweep_passes_on_the_options_of_its_groups_as_they_are():
    shared = [name for title in SWEEP_GROUPS for name in GROUPS[title]] + list(SWEEP_ALSO)
    parameters = set(inspect.signature(coverage_sweep.fn).parameters)
    assert parameters - SWEEP_OWN == set(shared)
    assert disagreements(coverage_sweep.fn, shared) == []


@pytest.mark.parametrize("flow", [spec_to_production, coverage_sweep], ids=lambda f: f.name)
def test_every_flow_parameter_is_described_for_the_ui(flow):
    properties = flow.parameters.properties
    assert set(properties) == set(inspect.signature(flow.fn).parameters)
    assert [name for name, p in properties.items() if not p.get("description")] == []


def test_every_option_is_in_exactly_one_group_of_the_command_line():
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(set(RunOptions.model_fields) - {"target"})


# The check itself: each way a copy can drift is found.
def drifted(
    target: str,
    reruns: Annotated[int, Field(ge=0, le=50)] = 3,
    coverage_target: float = 80.0,
    generator: Literal["auto", "llm"] = "auto",
    concurrency: Annotated[int, Field(ge=1, le=64)] = 8,
    timeout: Annotated[float, Field(gt=0)] | None = 300.0,
):
    """A flow whose parameters drifted from RunOptions in every way the check must see."""


def test_the_check_finds_each_kind_of_drift():
    found = disagreements(
        drifted, ["target", "reruns", "coverage_target", "generator", "concurrency", "timeout", "out"]
    )
    assert [line.split(":")[0] for line in found] == [
        "reruns",  # a bound
        "coverage_target",  # bounds missing
        "generator",  # choices
        "concurrency",  # default
        "timeout",  # None allowed
        "out",  # missing
    ]
