"""Frozen config dataclasses that take per-job overrides (dicts or `key=value` strings) with validation."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, Union

C = TypeVar("C", bound="OverridableConfig")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Turn a JSON or CLI value into the field's declared type, or raise ValueError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        is_null = value is None or (isinstance(value, str) and value.strip().lower() in {"none", "null", ""})
        if is_null and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, value, arg)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(f"{name}: cannot use {value!r} ({'; '.join(errors)})")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{name}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        inner = args[0] if args else str
        return tuple(_coerce(name, v.strip() if isinstance(v, str) else v, inner) for v in items if v != "")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"{name}: expected a boolean, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value
    raise ValueError(f"{name}: unsupported field type {hint!r}")


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """`["lr=1e-5", "steps=20"]` -> `{"lr": "1e-5", "steps": "20"}` (values coerced later, per field)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


@dataclasses.dataclass(frozen=True)
class OverridableConfig:
    """Base for frozen configs: `Cfg.from_overrides({"lr": "1e-5"})` validates names and values.

    Subclasses declare typed fields with defaults and check ranges in `validate()`.
    """

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for a value out of range; called on every construction."""

    @classmethod
    def from_overrides(cls: type[C], overrides: Mapping[str, Any] | None = None) -> C:
        overrides = dict(overrides or {})
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(names)}")
        values = {k: _coerce(k, v, hints[k]) for k, v in overrides.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}
