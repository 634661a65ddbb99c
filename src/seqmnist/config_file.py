"""Config files in: ``seqmnist train --config FILE``.

Two kinds of file, told apart by what they hold:

- A **record**: a ``config.json`` that ``seqmnist train`` wrote. It holds every field that every
  config.json has held since the first release (``RECORD_FIELDS``) and names its preset. It is
  read as resume reads it (``TrainConfig.from_dict``): a field added after the file was written
  keeps the meaning it had then (its declared default, not today's preset value).
- An **overlay**: anything less, usually hand-written JSON or TOML. Its keys are config fields,
  flat (``hidden = 128``) or nested under ``model`` as config.json nests them; they replace those
  fields of the preset (``--preset``, else the file's own ``preset`` key, else default).

Precedence: preset < file < command-line flags. Every value is checked against its field's
declaration (config.py) before anything runs; a bad one is one line naming the file and the field.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import PRESETS, ModelConfig, TrainConfig, apply_overrides, preset_config
from .errors import ConfigError, first_line
from .options import require_choice, require_int, require_number

# Fields of the first config.json seqmnist wrote (2026-11-26); every later one holds them too.
RECORD_FIELDS = (
    *("preset", "epochs", "batch_size", "lr", "weight_decay", "optimizer", "schedule"),
    *("grad_clip", "val_size", "normalize", "eval_test_every_epoch", "seed", "device"),
    *("threads", "amp"),
)
RECORD_MODEL_FIELDS = (
    *("cell", "hidden", "layers", "bidirectional", "readout", "dropout", "softmax_output"),
)
MAX_FILE_BYTES = 1 << 20  # a config is a few hundred bytes; refuse to parse a huge file


def load_config_file(
    path: str | os.PathLike,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[TrainConfig, dict[str, Any]]:
    """The config a ``--config`` file describes, with ``overrides`` (flags) on top, validated;
    and where it came from (``origin``: file, its sha256, record or overlay, preset, overrides).

    ``preset`` is the ``--preset`` the user gave (None if not given): an overlay starts from it;
    a record names its own, and a different ``preset`` is refused."""
    path = Path(path)
    raw = _read_bytes(path)
    data = _parse(path, raw)
    kind = "record" if _is_record(data) else "overlay"
    if kind == "record":
        config = _record_config(path, data, preset)
    else:
        config = _overlay_config(path, data, preset)
    origin = {
        "config_file": str(path.resolve()),
        "config_file_sha256": hashlib.sha256(raw).hexdigest(),
        "config_file_kind": kind,
        "preset": config.preset,
        "flags": dict(overrides or {}),
    }
    return apply_overrides(config, overrides or {}), origin


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ConfigError(f"--config {path} is a folder; give a .json or .toml file")
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"--config {path} is {size:,} bytes: not a seqmnist config")
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"--config {path} cannot be read ({exc.strerror or exc})") from None


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    """JSON or TOML (by the file's suffix) into a dict; any syntax error is one line."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigError(f"--config {path}: the file name must end in .json or .toml")
    try:
        text = raw.decode("utf-8-sig")  # a BOM, as Windows editors write it, is not content
        if suffix == ".toml":
            data = _toml_loads(text)
        else:
            data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSON/TOML errors and bad UTF-8 are ValueErrors
        kind = suffix[1:].upper()
        raise ConfigError(f"--config {path} is not valid {kind}: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"--config {path} must hold an object of config fields; got {type(data).__name__}"
        )
    return data


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pyproject installs tomli on Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a config may hold")


def _is_record(data: dict[str, Any]) -> bool:
    model = data.get("model")
    return (
        all(name in data for name in RECORD_FIELDS)
        and isinstance(model, dict)
        and all(name in model for name in RECORD_MODEL_FIELDS)
    )


def _record_config(path: Path, data: dict[str, Any], preset: str | None) -> TrainConfig:
    """A config.json written by seqmnist, read as ``--resume`` reads it."""
    model = dict(data["model"])
    if model.pop("input_size", 28) != 28:  # configs from before reading orders: always 28
        raise ConfigError(f"--config {path}: field model.input_size must be 28")
    if model.get("num_classes", 10) != 10:  # training reads MNIST: labels 0-9
        raise ConfigError(
            f"--config {path}: field model.num_classes must be 10 (MNIST's digits); "
            f"got {_short(model['num_classes'])}"
        )
    train = _check_fields(path, TrainConfig, {k: v for k, v in data.items() if k != "model"}, "")
    model = _check_fields(path, ModelConfig, model, "model.")
    if preset is not None and preset != data["preset"]:
        raise ConfigError(
            f"--config {path} is the record of a {data['preset']!r} run; drop --preset {preset} "
            "(or pass flags to change single fields)"
        )
    return TrainConfig.from_dict({**train, "model": model})


def _overlay_config(path: Path, data: dict[str, Any], preset: str | None) -> TrainConfig:
    """Hand-written fields over a preset; flat keys or nested under ``model``."""
    data = dict(data)
    model = data.pop("model", {})
    if not isinstance(model, dict):
        raise ConfigError(
            f"--config {path}: field model must be a table of model fields; "
            f"got {type(model).__name__}"
        )
    model_names = {f.name for f in fields(ModelConfig)}
    flat_model = {k: data.pop(k) for k in list(data) if k in model_names}
    twice = sorted(set(flat_model) & set(model))
    if twice:
        raise ConfigError(f"--config {path}: field {twice[0]} is given twice (flat and in model)")
    model = {
        **_check_fields(path, ModelConfig, model, "model."),
        **_check_fields(path, ModelConfig, flat_model, ""),
    }
    data = _check_fields(path, TrainConfig, data, "")
    base = data.pop("preset", None)
    if preset is not None and base is not None and preset != base:
        raise ConfigError(
            f"--config {path} starts from preset {base!r}, the command line from {preset!r}; "
            "keep one"
        )
    config = preset_config(preset or base or "default")
    try:
        return apply_overrides(config, {**data, **model})
    except ConfigError as exc:  # a rule between fields, e.g. --pixels-per-step with --order rows
        raise ConfigError(f"--config {path}: {exc}") from None


def _check_fields(path: Path, cls: type, values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Each key a field of ``cls``, each value of its type and within its declared range;
    returns the values with whole numbers of float fields as floats (TOML's ``lr = 1``)."""
    for key, value in values.items():
        _check_field(path, cls, key, value, prefix)
    float_fields = {f.name for f in fields(cls) if str(f.type) == "float"}
    return {k: float(v) if k in float_fields else v for k, v in values.items()}


def _check_field(path: Path, cls: type, key: str, value: Any, prefix: str) -> None:
    declared = {f.name: f for f in fields(cls) if f.name != "model"}
    if key not in declared:
        raise ConfigError(f"--config {path}: unknown field {prefix}{key}{_did_you_mean(key)}")
    f = declared[key]
    where = f"--config {path}: field {prefix}{key}"
    kind, meta = str(f.type), f.metadata
    choices = tuple(PRESETS) if key == "preset" else meta.get("choices")
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false; got {_short(value)}")
    if kind == "str" and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string; got {_short(value)}")
    if isinstance(value, (str, int, float)) and len(repr(value)) > 60:  # crafted: huge values
        raise ConfigError(f"{where} is too long to be valid; got {_short(value)}")
    if kind == "float" and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number; got {value!r}")
    if choices:
        require_choice(where, value, choices)
    elif kind == "int":
        require_int(where, value, int(meta["low"]), int(meta["high"]))
    elif kind == "float":
        require_number(where, value, meta["low"], meta["high"])


def _short(value: Any) -> str:
    """A value for an error line: its repr, cut short (a crafted file may hold a huge one)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(key: str) -> str:
    names = [f.name for f in fields(TrainConfig)] + [f.name for f in fields(ModelConfig)]
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def config_json(config: TrainConfig) -> str:
    """The resolved config as ``--print-config`` writes it: a record ``--config`` reads back."""
    return json.dumps(config.to_dict(), indent=2)
