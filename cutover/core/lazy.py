"""Dataclasses built when first used, not when their module is imported.

Building a dataclass compiles its ``__init__``, ``__repr__``, ``__eq__`` (and,
frozen, ``__setattr__``, ``__delattr__``, ``__hash__``) from generated source:
about a millisecond a class. The core declares some eighty, a journal record
per event kind among them, and every ``cutover`` process imports most of them
while `status` or `runs` builds about twenty. A module declares its classes
with this ``dataclass`` instead of the standard one (the type checker is shown
the standard one), and each class is built, by the standard decorator with the
same options, the first time anything needs it: an instance made (``__init__``),
or its fields read (``dataclasses.fields``, ``is_dataclass``, a dataclass
subclass being built). Until then no instance exists to compare, print or
hash, and nothing that reads one can tell the difference. One thread builds a
class; another needing it meanwhile waits for the build (``_build``).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

_FIELDS = "__dataclass_fields__"
_BUILD = threading.RLock()  # one build at a time; reentrant: building a class builds its pending bases


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
        self.building = False

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        _build(self.declared)
        fields = self.declared.__dict__[_FIELDS]
        if isinstance(fields, _Pending):  # read by its own build before it has fields: as for any class then
            raise AttributeError(_FIELDS)
        return fields


def _defer(declared: type, options: dict[str, Any]) -> None:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _build(declared)
        getattr(declared, "__init__")(self, *args, **kwargs)  # the one the build generated

    declared.__init__ = __init__  # type: ignore[misc]
    setattr(declared, _FIELDS, _Pending(declared, options))


def _build(declared: type) -> None:
    """Build ``declared`` as the standard decorator does, without ever showing another thread a half-built class.

    Its fields stay pending and its ``__init__`` stays the stub (which waits for this lock) until each is
    replaced, in one step, by the built one: a thread making an instance or reading the fields meanwhile
    waits for the build, and never reaches a base class's ``__init__`` or fields instead.
    """
    with _BUILD:
        pending = declared.__dict__.get(_FIELDS)
        if not isinstance(pending, _Pending) or pending.building:
            return  # built already (by another thread, or as a base of another class), or being built here
        pending.building = True
        options = pending.options
        if not options.get("init", True):  # no __init__ of its own: the inherited one, as the standard decorator
            delattr(declared, "__init__")
            dataclasses.dataclass(declared, **options)
            return
        documented = declared.__doc__ is not None
        # all but __init__, on the class itself: the fields are replaced in one step, the stub is left alone
        dataclasses.dataclass(declared, **{**options, "init": False})
        params: Any = getattr(declared, "__dataclass_params__")
        params.init = True  # as declared: the __init__ is the standard one, generated just below
        built = _built_init(declared, options)
        if not documented:  # the standard decorator's docstring, from the generated __init__'s signature
            declared.__doc__ = built.__doc__
        declared.__init__ = built.__dict__["__init__"]  # type: ignore[misc]  # last: the stub gives way


def _built_init(declared: type, options: dict[str, Any]) -> type:
    """A subclass declaring nothing, built by the standard decorator for its ``__init__``: ``declared``'s own.

    The generated ``__init__`` names no class (only the fields, their defaults and ``__post_init__``),
    so it is the one the standard decorator would have given ``declared``.
    """
    twin = type(declared.__name__, (declared,), {"__module__": declared.__module__,
                                                 "__qualname__": declared.__qualname__})
    return dataclasses.dataclass(twin, init=True, repr=False, eq=False, order=False, unsafe_hash=False,
                                 frozen=bool(options.get("frozen", False)), match_args=False)
