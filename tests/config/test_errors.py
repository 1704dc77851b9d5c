"""One wording for pydantic validation errors (config files, model manifests, web requests)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from coral_inference.config.errors import validation_problems


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int

    @field_validator("port")
    @classmethod
    def positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be > 0")
        return value


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    http: Inner


def _errors(data: dict) -> list:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(data)
    return info.value.errors()


def test_each_kind_of_problem_reads_the_same():
    assert validation_problems(_errors({"http": {}}), unknown_hint="see docs") == [
        "http.port: required field is missing"
    ]
    assert validation_problems(
        _errors({"http": {"port": 1, "prot": 2}}), unknown_hint="see docs"
    ) == ["http.prot: unknown field (check the spelling; see docs)"]
    assert validation_problems(_errors({"http": {"port": -1}}), unknown_hint="x") == [
        "http.port: must be > 0 (got -1)"
    ]
    assert validation_problems(
        _errors({"http": {"port": -1}}), unknown_hint="x", show_input=False
    ) == ["http.port: must be > 0"]


def test_a_caller_may_word_the_location():
    problems = validation_problems(
        _errors({"http": {}}), unknown_hint="x", location=lambda e: f"[{e['loc'][-1]}]"
    )
    assert problems == ["[port]: required field is missing"]
