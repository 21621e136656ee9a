"""YAML documents that remember where each value came from.

Users write runbooks, inventories and stack config by hand; when one is wrong
the error must name the file and the line. ``load_yaml`` parses a file once
into plain data *and* keeps PyYAML's node tree, so that a pydantic error
location such as ``("steps", 3, "timeout")`` can be turned into a line number.
``problems_from_pydantic`` does that translation for every error at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from cutover.errors import Problem, ValidationError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class VaultText(str):
    """An ansible-vault encrypted value (``!vault |``), kept as its ciphertext.

    Only the inventory decrypts it, and only to know what to redact; it is
    never shown, journalled or passed on: Ansible decrypts it itself.
    """

    def __repr__(self) -> str:
        return "VaultText(<encrypted>)"


def _construct_vault(loader: _UniqueKeyLoader, node: yaml.Node) -> VaultText:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, "!vault must tag the text ansible-vault encrypt_string "
                                                "printed", node.start_mark)
    return VaultText(loader.construct_scalar(node))


_UniqueKeyLoader.add_constructor("!vault", _construct_vault)


@dataclass(frozen=True)
class YamlDocument:
    """Parsed data plus the node tree it came from."""

    path: str
    data: Any
    root: yaml.Node | None

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Line (1-based) of the deepest node reachable along ``loc``."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(part):
                return value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None


def load_yaml(path: Path, *, display: str | None = None) -> YamlDocument:
    """Parse ``path``; a syntax error becomes a ValidationError naming file and line."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ValidationError([Problem(shown, "file not found", hint="check the path")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Problem(shown, f"cannot read file: {exc}")]) from exc
    return parse_yaml(text, shown)


def parse_yaml(text: str, display: str) -> YamlDocument:
    try:
        root, data = _compose_and_construct(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or str(exc)
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            reason += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        raise ValidationError(
            [Problem(display, f"YAML syntax error: {reason}", line=line, hint="fix the YAML syntax")],
            what="YAML file",
        ) from exc
    except yaml.YAMLError as exc:
        raise ValidationError([Problem(display, f"YAML error: {exc}")]) from exc
    return YamlDocument(display, data, root)


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree, then the data built from it: what yaml.compose and yaml.load give, parsing once."""
    loader = _UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def _at(data: Any, loc: Sequence[str | int]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def field_path(loc: Sequence[str | int]) -> str:
    """('steps', 3, 'timeout') -> 'steps[3].timeout'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problems_from_pydantic(
    doc: YamlDocument, exc: pydantic.ValidationError, *, loc_prefix: Sequence[str | int] = ()
) -> list[Problem]:
    """One Problem per pydantic error, located in ``doc``."""
    return problems_from_errors(doc, exc.errors(include_url=False), loc_prefix=loc_prefix)


def problems_from_errors(
    doc: YamlDocument, errors: Sequence[Any], *, loc_prefix: Sequence[str | int] = ()
) -> list[Problem]:
    """One Problem per pydantic error (as ``ValidationError.errors()`` lists them), located in ``doc``."""
    problems = []
    for err in errors:
        loc = [*loc_prefix, *_data_loc(_at(doc.data, loc_prefix), err["loc"])]
        problems.append(
            Problem(
                doc.path,
                _message(err),
                line=doc.line_of(loc),
                field=field_path(loc) or None,
                hint=_hint(err),
            )
        )
    return problems


def _data_loc(data: Any, loc: Sequence[str | int]) -> list[str | int]:
    """Keep only the parts of a pydantic location that are keys or indexes of the data.

    Discriminated unions insert the tag ("command", "ssh", ...) and validators
    insert names like "function-after[...]": neither is in the user's file.
    """
    kept: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif isinstance(current, (dict, list)) or current is None:
            # a missing key is still worth naming; anything else is a tag
            if isinstance(part, str) and "[" not in part and not _is_tag(current, part):
                kept.append(part)
            continue
        else:
            continue
        kept.append(part)
    return kept


def _is_tag(container: Any, part: str) -> bool:
    return isinstance(container, dict) and container.get("kind") == part


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return "missing 'kind'"
    message = err["msg"]
    return message.removeprefix("Value error, ")


def _hint(err: dict[str, Any]) -> str | None:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "remove it or check its spelling against the documentation"
    if kind == "missing":
        return "add it"
    if kind == "string_type" and isinstance(err.get("input"), (bool, int, float)):
        # `run: true` or `code: 01`-like values: YAML typed them before we saw them
        read_as = "a boolean (true/false/yes/no/on/off are booleans in YAML)" if isinstance(err["input"], bool) \
            else "a number"
        return f"YAML read this value as {read_as}; put it in quotes to keep it as text"
    return None
