"""Validation errors located in the user's YAML file, with a hint a tired operator can act on."""

from __future__ import annotations

import pydantic
import pytest

from cutover.model.yamlsource import parse_yaml, problems_from_pydantic


class Step(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    id: str
    run: str


def _problems(text: str):
    doc = parse_yaml(text, "runbooks/night.yaml")
    with pytest.raises(pydantic.ValidationError) as raised:
        Step.model_validate(doc.data)
    return problems_from_pydantic(doc, raised.value)


@pytest.mark.parametrize(("value", "read_as"), [("true", "a boolean"), ("yes", "a boolean"), ("1.5", "a number")])
def test_a_value_yaml_typed_is_located_and_the_hint_says_to_quote_it(value: str, read_as: str):
    [problem] = _problems(f"id: s1\nrun: {value}\n")
    assert (problem.line, problem.field) == (2, "run")
    assert read_as in problem.hint and "quotes" in problem.hint


def test_an_unknown_key_is_located_and_named():
    [problem] = _problems("id: s1\nrun: 'true'\nretries: 3\n")
    assert (problem.line, problem.field, problem.message) == (3, "retries", "unknown key")
