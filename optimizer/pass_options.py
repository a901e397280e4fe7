"""Pass options: ``--set PASS.OPTION=VALUE`` parsed, typed by the pass's ``Options`` dataclass, checked.

A value is read as its field's type: ``bool`` (true/false, 1/0, yes/no), ``int``, ``float``,
``str``, ``Literal[...]`` (one of its choices), a tuple or list of int or str (comma-separated),
or ``Optional[X]`` (``none`` too). Every fault is a :class:`UserError` naming what is valid.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from optimizer.errors import UserError
from optimizer.registry import all_passes, get_pass

Settings = dict[str, dict[str, str]]  # pass name -> option name -> value, as given

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def parse_settings(items: Iterable[str]) -> Settings:
    """``PASS.OPTION=VALUE`` strings as ``{pass: {option: value}}``; a malformed one is a UserError."""
    settings: Settings = {}
    for item in items:
        key, equals, value = item.partition("=")
        name, dot, option = key.strip().partition(".")
        if not (equals and dot and name and option.strip()):
            raise UserError(f"--set {item}: expected PASS.OPTION=VALUE (e.g. simplify.onnxsim=false)")
        settings.setdefault(name, {})[option.strip()] = value.strip()
    return settings


def resolve_settings(settings: Settings, pipeline: Iterable[str]) -> dict[str, Any]:
    """The ``Options`` instance of every pass in ``pipeline``, with ``settings`` applied.

    A setting for an unknown pass, for a pass not in the pipeline, of an option the pass does
    not have, or with a value of the wrong type is a :class:`UserError`.
    """
    names = list(pipeline)
    for name, values in settings.items():
        item = "--set {}.{}={}".format(name, *next(iter(values.items()), ("OPTION", "VALUE")))
        try:
            get_pass(name)
        except UserError as exc:  # an unknown pass, with close matches
            raise UserError(f"{item}: {exc}") from None
        if name not in names:
            listed = ", ".join(names) or "empty"
            raise UserError(f"{item}: pass {name} is not in the pipeline ({listed}): add it with --passes +{name}")
    return {name: build_options(get_pass(name), settings.get(name, {})) for name in names}


def check_settings(settings: Settings) -> None:
    """Check ``settings`` for a verb that may run any registered pass (``plan``, ``auto``)."""
    resolve_settings(settings, all_passes())


def build_options(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of ``cls.Options`` with ``values`` applied (a string is read as the field's type)."""
    fields = {option.name: option for option in dataclasses.fields(cls.Options)}
    hints = typing.get_type_hints(cls.Options)
    changes = {}
    for option, value in values.items():
        if option not in fields:
            have = f"has options {', '.join(fields)}" if fields else "has no options"
            raise UserError(f"--set {cls.name}.{option}={value}: pass {cls.name} {have}")
        if isinstance(value, str):
            try:
                value = read_value(value, hints[option])
            except ValueError as exc:
                raise UserError(f"--set {cls.name}.{option}={value}: {exc}") from None
        changes[option] = value
    return dataclasses.replace(cls.Options(), **changes)


def read_value(text: str, kind: Any) -> Any:
    """``text`` as a value of the type ``kind``; a ValueError says what was expected."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        if len(inner) != 1 or len(args) != 2:
            raise ValueError(f"type {type_text(kind)} cannot be set from the command line")
        if text.lower() == "none":
            return None
        try:
            return read_value(text, inner[0])
        except ValueError as exc:
            raise ValueError(f"{exc} or 'none'") from None
    if origin is Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, args))}")
    if origin in (tuple, list):
        item = args[0] if args else None
        homogeneous = origin is list or args[1:] == (Ellipsis,)
        if not homogeneous or item not in (int, str):
            raise ValueError(f"type {type_text(kind)} cannot be set from the command line")
        try:
            return origin(read_value(part.strip(), item) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValueError(f"expected comma-separated {item.__name__}s") from None
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError("expected true or false")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected {'an int' if kind is int else 'a float'}") from None
    if kind is str:
        return text
    raise ValueError(f"type {type_text(kind)} cannot be set from the command line")


def type_text(kind: Any) -> str:
    """A short name of an option's type for help: ``int``, ``a|b``, ``int,...``, ``int|none``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        return "|".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return "|".join("none" if arg is type(None) else type_text(arg) for arg in args)
    if origin in (tuple, list):
        return f"{type_text(args[0])},..." if args else "list"
    return getattr(kind, "__name__", str(kind))


def describe_options(cls: type) -> list[dict[str, Any]]:
    """A pass's options as plain data: name, type, default and help of each."""
    options = getattr(cls, "Options", None)
    if options is None:
        return []
    hints, defaults = typing.get_type_hints(options), option_values(options())
    return [
        {
            "name": option.name,
            "type": type_text(hints[option.name]),
            "default": defaults[option.name],
            "help": option.metadata.get("help", ""),
        }
        for option in dataclasses.fields(options)
    ]


def option_values(options: Any) -> dict[str, Any]:
    """An ``Options`` instance as JSON-ready data (tuples as lists)."""
    values = dataclasses.asdict(options)
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}
