"""Dataclasses built when first used, not when their module is imported.

Building a dataclass compiles its ``__init__``, ``__repr__``, ``__eq__`` (and,
frozen, ``__setattr__``, ``__delattr__``, ``__hash__``) from generated source:
about a millisecond a class. The core declares some eighty, a journal record
per event kind among them, and every ``cutover`` process imports most of them
while `status` or `runs` builds a dozen. A module declares its classes with this
``dataclass`` instead of the standard one (the type checker is shown the
standard one), and each class is built, by the standard decorator with the
same options, the first time anything needs it: an instance made (``__init__``),
or its fields read (``dataclasses.fields``, ``is_dataclass``, a dataclass
subclass being built). Until then no instance exists to compare, print or hash, and nothing
that reads one can tell the difference.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

_FIELDS = "__dataclass_fields__"
_BUILD = threading.RLock()  # two threads making the first instance build the class once


def dataclass(cls: type | None = None, /, **options: Any) -> Any:
    """``@dataclass`` or ``@dataclass(frozen=True)``, as the standard decorator, built on first use."""
    def defer(declared: type) -> type:
        # built now: a slotted dataclass is a new class (it cannot be built in place later), and
        # a class's own __init__ is what the first instance would otherwise be noticed by
        if options.get("slots") or "__init__" in declared.__dict__:
            return dataclasses.dataclass(**options)(declared)
        _defer(declared, options)
        return declared

    return defer(cls) if cls is not None else defer


class _Pending:
    """Stands for a class's ``__dataclass_fields__`` until it is built: reading it builds the class."""

    def __init__(self, declared: type, options: dict[str, Any]) -> None:
        self.declared = declared
        self.options = options

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        _build(self.declared)
        return self.declared.__dict__[_FIELDS]


def _defer(declared: type, options: dict[str, Any]) -> None:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _build(declared)
        getattr(declared, "__init__")(self, *args, **kwargs)  # the one the build generated

    declared.__init__ = __init__  # type: ignore[misc]
    setattr(declared, _FIELDS, _Pending(declared, options))


def _build(declared: type) -> None:
    with _BUILD:
        pending = declared.__dict__.get(_FIELDS)
        if not isinstance(pending, _Pending):
            return  # built already (by another thread, or as a base of another class)
        delattr(declared, "__init__")
        delattr(declared, _FIELDS)
        dataclasses.dataclass(declared, **pending.options)
