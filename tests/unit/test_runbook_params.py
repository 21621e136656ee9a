"""Runbook parameters: one runbook for every wave, values checked before anything runs."""

from __future__ import annotations

import pytest

from cutover.errors import ValidationError
from cutover.model.runbook import parse_runbook

RUNBOOK = """\
name: params
params:
  wave:
    type: group
    description: the wave
    groups: ["wave*"]
  retries: {type: integer, description: how many, default: 2}
wave: ((wave))
steps:
  - id: a
    kind: command
    for_each: ((wave))
    run: echo ((wave)) $((1+2)) {{ not_ours }}
    rollback: none
    rollback_reason: nothing
    concurrency: ((retries))
"""


def test_values_replace_their_references_and_keep_their_type():
    loaded = parse_runbook(RUNBOOK, "p.yaml", params={"wave": "wave2", "retries": "5"})
    step = loaded.runbook.steps[0]
    assert loaded.runbook.wave == "wave2" and step.for_each == "wave2"
    assert step.concurrency == 5 and loaded.params == {"wave": "wave2", "retries": 5}
    # the shell's $((..)) and Jinja2's {{ }} are left alone
    assert step.run == "echo wave2 $((1+2)) {{ not_ours }}"


@pytest.mark.parametrize(("given", "message", "line"), [
    ({}, "parameter 'wave' has no value", 4),
    ({"wave": "wave1", "colour": "red"}, "unknown parameter 'colour'", 3),
    ({"wave": "wave1", "retries": "two"}, "parameter 'retries': 'two' is not an integer", 7),
])
def test_a_missing_unknown_or_ill_typed_parameter_is_refused_with_file_and_line(given, message, line):
    with pytest.raises(ValidationError) as caught:
        parse_runbook(RUNBOOK, "p.yaml", params=given)
    problem = caught.value.problems[0]
    assert message in problem.message and (problem.file, problem.line) == ("p.yaml", line)


def test_a_reference_to_an_undeclared_parameter_names_its_line():
    text = RUNBOOK.replace("run: echo ((wave))", "run: echo ((wav))")
    with pytest.raises(ValidationError) as caught:
        parse_runbook(text, "p.yaml", params={"wave": "wave1"})
    problem = caught.value.problems[0]
    assert "((wav)) names no declared parameter" in problem.message and problem.line == 13


def test_a_default_of_the_wrong_type_is_refused_where_it_is_declared():
    text = RUNBOOK.replace("default: 2}", "default: many}")
    with pytest.raises(ValidationError) as caught:
        parse_runbook(text, "p.yaml", params={"wave": "wave1"})
    assert caught.value.problems[0].line == 7 and "not an integer" in caught.value.problems[0].message
