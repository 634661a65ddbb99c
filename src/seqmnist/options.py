"""How a config field is declared and checked: ``option(...)`` carries its help, choices, range
and resume rule; the checks below turn a bad value into one line that names its flag. config.py
declares the fields, the CLI builds flags from them (``FlagSpec``) and validation reads the same
declarations, so a hyperparameter is declared in one place."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    resumable: bool = False,
    flag: bool = True,
) -> Any:
    """A config field with everything the CLI and validation need to know about it.

    ``low``/``high`` bound numbers; ``resumable`` fields may differ on ``--resume`` (where the
    process runs, not what it computes); ``flag=False`` keeps a field off the command line.
    """
    meta = {
        "help": help,
        "choices": choices,
        "low": low,
        "high": high,
        "resumable": resumable,
        "flag": flag,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class FlagSpec:
    """One ``seqmnist train`` flag, as declared by its config field."""

    name: str  # field name, e.g. "batch_size"
    owner: type  # TrainConfig or ModelConfig
    type: type  # int, float, bool or str
    help: str
    choices: tuple[str, ...] | None
    resumable: bool

    @property
    def flag(self) -> str:
        return flag_name(self.name)


_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def flag_specs(owner: type) -> list[FlagSpec]:
    """The command-line flags a config dataclass declares, in declaration order."""
    return [
        FlagSpec(
            f.name,
            owner,
            _TYPES[str(f.type)],
            f.metadata["help"],
            f.metadata["choices"],
            f.metadata["resumable"],
        )
        for f in fields(owner)
        if f.metadata.get("flag", False)
    ]


def validate_fields(config: Any) -> None:
    """Check every declared choice and range of a config dataclass; one message per bad value."""
    for f in fields(config):
        meta, value = f.metadata, getattr(config, f.name)
        if not meta:
            continue
        if meta["choices"] is not None:
            require_choice(flag_name(f.name), value, meta["choices"])
        elif str(f.type) == "int" and meta["low"] is not None:
            require_int(flag_name(f.name), value, int(meta["low"]), int(meta["high"]))
        elif str(f.type) == "float" and meta["low"] is not None:
            require_number(flag_name(f.name), value, meta["low"], meta["high"])
        elif str(f.type) == "bool" and not isinstance(value, bool):
            raise ConfigError(f"{flag_name(f.name)} must be true or false; got {value!r}")


def known_fields(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {where} config field(s): {', '.join(unknown)}")
    return {k: v for k, v in data.items() if k != "model"}


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def require_choice(flag: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag} must be one of {', '.join(choices)}; got {value!r}")


def require_int(flag: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{flag} must be an integer from {low} to {high}; got {value!r}")


def is_number(value: Any) -> bool:
    """An int or float from JSON or a caller, not a bool (which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require_number(flag: str, value: Any, low: float, high: float) -> None:
    if not is_number(value) or not (low <= float(value) <= high):
        raise ConfigError(f"{flag} must be a number from {low:g} to {high:g}; got {value!r}")
