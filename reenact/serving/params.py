"""Typed model parameters: the ``parameters {}`` of a config.pbtxt read into a dataclass.

Each model declares its tunables as a frozen dataclass whose field defaults are the one source of
each default; ``config.pbtxt`` may set any of them (as strings, the only kind Triton has) and
:func:`from_model_config` converts them to the field's type, refusing unknown keys and bad values
at model load rather than at the first request.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ParameterError(ValueError):
    """A config.pbtxt parameter is unknown or has a value of the wrong type."""


def _convert(name: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")
            return lowered in _TRUE
        if kind in (int, float, str):
            return kind(raw)
        if typing.get_origin(kind) is tuple:
            (item,) = set(typing.get_args(kind)) - {Ellipsis}
            return tuple(_convert(name, part.strip(), item) for part in raw.split(",") if part)
    except ValueError as exc:
        raise ParameterError(f"parameter {name}={raw!r}: {exc}") from exc
    raise ParameterError(f"parameter {name}: unsupported type {kind!r}")


def from_strings(cls: type[T], values: dict[str, str]) -> T:
    """Build ``cls`` from string values, converting each to its field's type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ParameterError(
            f"unknown parameters {unknown}; {cls.__name__} accepts {sorted(fields)}"
        )
    kwargs = {k: _convert(k, v, hints[k]) for k, v in values.items()}
    return cls(**kwargs)


# parameters read by the repository tooling, not by the model (reenact.serving.local_repo)
REPOSITORY_PARAMETERS = frozenset({"depends_on", "torchscript_file"})


def from_model_config(cls: type[T], model_config: dict[str, Any], section: str = "") -> T:
    """Build ``cls`` from the JSON model config Triton hands to ``initialize``.

    A key ``<section>.<name>`` belongs to a section (a model that runs another model's step
    in-process carries that step's parameters so): with ``section`` given only its keys are read,
    without their prefix; with none, only the keys outside every section.
    """
    params = model_config.get("parameters", {}) or {}
    values = {}
    for key, value in params.items():
        owner, _, name = key.rpartition(".")
        if owner == section and key not in REPOSITORY_PARAMETERS:
            values[name] = value["string_value"]
    return from_strings(cls, values)
