"""The one way Coral words a pydantic validation error: ``<dotted.location>: <problem>``.

Configuration files, model manifests and web API requests all report problems
through ``validation_problems`` so the same mistake reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic_core import ErrorDetails


def dotted(loc: Sequence[Any]) -> str:
    """``("models", "cam", "backend")`` -> ``"models.cam.backend"``; empty -> ``"(top level)"``."""
    return ".".join(str(part) for part in loc) or "(top level)"


def problem_text(error: ErrorDetails, *, unknown_hint: str, show_input: bool = True) -> str:
    """The problem of one error without its location."""
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "extra_forbidden":
        return f"unknown field (check the spelling; {unknown_hint})"
    message = error["msg"].removeprefix("Value error, ")
    return f"{message} (got {error.get('input')!r})" if show_input else message


def validation_problems(
    errors: Iterable[ErrorDetails],
    *,
    unknown_hint: str,
    location: Callable[[ErrorDetails], str] | None = None,
    show_input: bool = True,
) -> list[str]:
    """One ``<location>: <problem>`` line per error (``location`` defaults to the dotted loc)."""
    where = location or (lambda error: dotted(error["loc"]))
    return [
        f"{where(error)}: {problem_text(error, unknown_hint=unknown_hint, show_input=show_input)}"
        for error in errors
    ]
