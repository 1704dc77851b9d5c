"""Workflow definitions checked before they run, with errors that name the step and field.

The engine reports a misspelled block type as a pydantic error over a union of
several hundred tags, and a dangling selector without the step that holds it.
``check_workflow`` compiles the definition with the engine (plugins from
``WORKFLOWS_PLUGINS`` plus the configured ones) and turns those errors into
``WorkflowDefinitionProblem``\\ s a person can act on.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorkflowDefinitionProblem:
    step: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.step is not None:
            where.append(f"step {self.step!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where) or 'workflow'}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "field": self.field, "message": self.message}


class InvalidWorkflowError(ValueError):
    """A workflow definition that cannot run; ``problems`` name each step and field."""

    def __init__(self, problems: list[WorkflowDefinitionProblem]):
        self.problems = problems
        super().__init__("invalid workflow definition:\n  " + "\n  ".join(map(str, problems)))


def structural_problems(definition: Any) -> list[WorkflowDefinitionProblem]:
    """Checks that need no engine: the shape of the JSON document."""
    if not isinstance(definition, dict):
        return [
            WorkflowDefinitionProblem(
                None, None, f"expected a JSON object, got {type(definition).__name__}"
            )
        ]
    problems = [
        WorkflowDefinitionProblem(
            None, key, "missing (a workflow has 'version', 'inputs', 'steps' and 'outputs')"
        )
        for key in ("version", "inputs", "steps", "outputs")
        if key not in definition
    ]
    steps = definition.get("steps", [])
    if not isinstance(steps, list):
        return problems + [
            WorkflowDefinitionProblem(None, "steps", "must be a list of step objects")
        ]
    for index, step in enumerate(steps):
        name = step.get("name") if isinstance(step, dict) else None
        label = name or f"#{index}"
        if not isinstance(step, dict):
            problems.append(WorkflowDefinitionProblem(label, None, "a step must be a JSON object"))
            continue
        for key in ("type", "name"):
            if key not in step:
                problems.append(WorkflowDefinitionProblem(label, key, "missing"))
    return problems


def check_workflow(definition: Any, *, plugins: Iterable[str] = ("coral_workflows",)) -> None:
    """Compile ``definition`` with the engine; raise ``InvalidWorkflowError`` naming step and field."""
    problems = structural_problems(definition)
    if problems:
        raise InvalidWorkflowError(problems)
    ensure_plugins_env(plugins)
    # heavy: Roboflow inference (seconds, ~1 GB); only a compilation needs it
    from coral_inference.inference_adapter.workflows import ExecutionEngine as engine
    from coral_inference.inference_adapter.workflows import StepExecutionMode as mode

    try:
        engine.init(
            workflow_definition=definition,
            init_parameters={
                "workflows_core.model_manager": None,
                "workflows_core.api_key": None,
                "workflows_core.step_execution_mode": mode.LOCAL,
            },
        )
    except Exception as exc:
        explained = explain_engine_error(definition, exc)
        if explained is None:
            raise
        raise InvalidWorkflowError(explained) from exc


def with_plugins(current: str | None, plugins: Iterable[str]) -> str:
    """The ``WORKFLOWS_PLUGINS`` value with ``plugins`` added after the user's own, in order."""
    present = [p for p in (current or "").split(",") if p]
    return ",".join(present + [p for p in dict.fromkeys(plugins) if p not in present])


def ensure_plugins_env(plugins: Iterable[str]) -> None:
    """Add plugin modules to ``WORKFLOWS_PLUGINS`` (read by the engine at every compilation)."""
    current = os.environ.get("WORKFLOWS_PLUGINS", "")
    wanted = with_plugins(current, plugins)
    if wanted != current:
        os.environ["WORKFLOWS_PLUGINS"] = wanted


def unwrap_specification(data: Any) -> Any:
    """The definition itself: Roboflow app exports wrap it in ``{"specification": {...}}``."""
    if isinstance(data, dict) and isinstance(data.get("specification"), dict):
        return data["specification"]
    return data


def explain_engine_error(
    definition: dict[str, Any], exc: BaseException
) -> list[WorkflowDefinitionProblem] | None:
    """Problems naming step and field for a compilation error; None when it is not about the definition."""
    inner = getattr(exc, "inner_error", None)
    if inner is not None and hasattr(inner, "errors"):
        return [_from_validation_error(definition, error) for error in inner.errors()]
    message = getattr(exc, "public_message", None) or str(exc)
    reference = re.search(r"'(\$(?:steps|inputs)\.[^']+)'", message)
    if reference:
        return list(_references(definition, reference.group(1), message)) or [
            WorkflowDefinitionProblem(None, None, message)
        ]
    if (
        type(exc).__name__.endswith(
            ("CompilerError", "DefinitionError", "SyntaxError", "ReferenceTargetError")
        )
        or "Workflow" in type(exc).__name__
    ):
        return [WorkflowDefinitionProblem(None, None, message)]
    return None


def _from_validation_error(
    definition: dict[str, Any], error: dict[str, Any]
) -> WorkflowDefinitionProblem:
    loc = list(error.get("loc", ()))
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
        step_def = definition["steps"][loc[1]] if loc[1] < len(definition["steps"]) else {}
        step = step_def.get("name", f"#{loc[1]}")
        if error.get("type") == "union_tag_invalid":
            block_type = step_def.get("type")
            tags = [
                t
                for t in (error.get("ctx") or {})
                .get("expected_tags", "")
                .replace("'", "")
                .split(", ")
                if "/" in t
            ]
            close = difflib.get_close_matches(str(block_type), tags, n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else "; is the plugin that provides it in WORKFLOWS_PLUGINS?"
            )
            return WorkflowDefinitionProblem(
                step, "type", f"unknown block type {block_type!r}{hint}"
            )
        rest = [str(p) for p in loc[2:] if str(p) != step_def.get("type")]
        field = ".".join(rest) or None
        return WorkflowDefinitionProblem(step, field, error.get("msg", "invalid"))
    return WorkflowDefinitionProblem(
        None, ".".join(map(str, loc)) or None, error.get("msg", "invalid")
    )


def _references(
    definition: dict[str, Any], selector: str, message: str
) -> Iterator[WorkflowDefinitionProblem]:
    known = [s.get("name") for s in definition.get("steps", []) if isinstance(s, dict)]
    for step in definition.get("steps", []):
        for field, value in step.items():
            values = value if isinstance(value, list) else [value]
            if any(
                isinstance(v, str) and (v == selector or v.startswith(selector + "."))
                for v in values
            ):
                yield WorkflowDefinitionProblem(
                    step.get("name"),
                    field,
                    f"{message} (selector {value!r}; steps defined: {', '.join(map(str, known))})",
                )
    for output in definition.get("outputs", []):
        selector_value = output.get("selector", "")
        if isinstance(selector_value, str) and (
            selector_value == selector or selector_value.startswith(selector + ".")
        ):
            yield WorkflowDefinitionProblem(
                None, f"outputs.{output.get('name')}", f"{message} (selector {selector_value!r})"
            )
