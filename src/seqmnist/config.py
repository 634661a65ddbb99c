"""Configuration: two dataclasses, the named presets, and validation with clear messages.

Every CLI flag of ``seqmnist train`` maps 1:1 to a field here (``--batch-size`` -> ``batch_size``).
A run starts from a preset and any flag the user gives overrides that one field; the resolved
config is saved as ``config.json`` in the run directory, so a run describes itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ConfigError

CELLS = ("lstm", "gru", "rnn")
READOUTS = ("final", "last", "mean")
OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("onecycle", "constant")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("off", "bf16", "fp16")


@dataclass
class ModelConfig:
    """Architecture of a ``SeqClassifier``; saved inside every checkpoint."""

    cell: str = "lstm"
    """recurrent cell: lstm, gru or rnn"""
    hidden: int = 64
    """hidden units per direction"""
    layers: int = 1
    """stacked recurrent layers"""
    bidirectional: bool = True
    """read the rows top-down and bottom-up"""
    readout: str = "final"
    """final: final states of both directions; last: output[:, -1, :] (the article's); mean: mean over time"""
    dropout: float = 0.0
    """dropout between recurrent layers and before the classifier"""
    softmax_output: bool = False
    """the article's flaw 1: a softmax inside the model, so the loss sees probabilities"""
    input_size: int = 28
    """features per time step (pixels per row)"""
    num_classes: int = 10
    """output classes"""

    def validate(self) -> None:
        _choice("cell", self.cell, CELLS)
        _choice("readout", self.readout, READOUTS)
        _int_range("hidden", self.hidden, 1, 4096)
        _int_range("layers", self.layers, 1, 16)
        _float_range("dropout", self.dropout, 0.0, 0.95)
        _int_range("input_size", self.input_size, 1, 4096)
        _int_range("num_classes", self.num_classes, 2, 1000)


@dataclass
class TrainConfig:
    """Everything about one training run except where the data lives."""

    preset: str = "default"
    """the preset this config started from"""
    epochs: int = 15
    """passes over the training split"""
    batch_size: int = 192
    """samples per optimisation step (per process under torchrun)"""
    lr: float = 5e-3
    """peak learning rate"""
    weight_decay: float = 1e-4
    """decoupled weight decay (AdamW only)"""
    optimizer: str = "adamw"
    """adamw or adam"""
    schedule: str = "onecycle"
    """onecycle (warm up, then cosine anneal to ~0) or constant"""
    warmup_fraction: float = 0.01
    """share of all steps the one-cycle schedule spends warming up to the peak lr"""
    grad_clip: float = 1.0
    """clip the global gradient norm to this value; 0 turns clipping off"""
    val_size: int = 5000
    """images held out of the 60,000 training images for validation; 0 for none"""
    ema_decay: float = 0.995
    """evaluate and save an exponential moving average of the weights with this decay, reached after a warm-up (0 = off)"""
    augment_shift: int = 2
    """random translation of training images by up to this many pixels (0 = off)"""
    normalize: bool = True
    """standardise pixels with MNIST's mean and std (False: ToTensor scaling to [0, 1] only)"""
    eval_test_every_epoch: bool = False
    """evaluate the test set after every epoch (the article's flaw 3; for comparison only)"""
    seed: int = 0
    """seed for weights, the validation split, shuffling and dropout"""
    device: str = "auto"
    """auto (cuda, then mps, then cpu), cpu, cuda or mps"""
    threads: int = 0
    """CPU threads for PyTorch; 0 = one per core"""
    amp: str = "off"
    """mixed precision on CUDA: off, bf16 or fp16"""
    model: ModelConfig = field(default_factory=ModelConfig)

    def validate(self) -> None:
        _choice("preset", self.preset, tuple(PRESETS))
        _int_range("epochs", self.epochs, 1, 10_000)
        _int_range("batch_size", self.batch_size, 1, 65_536)
        _float_range("lr", self.lr, 1e-8, 10.0)
        _float_range("weight_decay", self.weight_decay, 0.0, 10.0)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _float_range("warmup_fraction", self.warmup_fraction, 0.01, 0.9)
        _float_range("grad_clip", self.grad_clip, 0.0, 1e6)
        _int_range("val_size", self.val_size, 0, 59_000)
        _int_range("augment_shift", self.augment_shift, 0, 8)
        _float_range("ema_decay", self.ema_decay, 0.0, 0.9999)
        _int_range("seed", self.seed, 0, 2**63 - 1)
        _choice("device", self.device, DEVICES)
        _int_range("threads", self.threads, 0, 1024)
        _choice("amp", self.amp, AMP_MODES)
        self.model.validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from ``to_dict()`` output (config.json, checkpoints); unknown keys are an error."""
        data = dict(data)
        model = ModelConfig(**_known(ModelConfig, data.pop("model", {}), "model"))
        return cls(model=model, **_known(cls, data, "train"))


# Our recipe: every flaw of the article fixed, tuned for a 2-core CPU (see benchmarks/README.md).
DEFAULT = TrainConfig()

# The article's recipe, faithfully: softmax into CrossEntropyLoss, output[:, -1, :] readout,
# ToTensor scaling only, Adam 1e-3, batch 32, 30 epochs, no validation split, test every epoch.
SEED = TrainConfig(
    preset="seed",
    epochs=30,
    batch_size=32,
    lr=1e-3,
    weight_decay=0.0,
    optimizer="adam",
    schedule="constant",
    grad_clip=0.0,
    val_size=0,
    augment_shift=0,
    ema_decay=0.0,
    normalize=False,
    eval_test_every_epoch=True,
    model=ModelConfig(readout="last", softmax_output=True),
)

PRESETS: dict[str, TrainConfig] = {"default": DEFAULT, "seed": SEED}

# Fields of ModelConfig that are also train flags (``--hidden`` -> ``model.hidden``).
MODEL_FLAG_FIELDS = ("cell", "hidden", "layers", "bidirectional", "readout", "dropout")


def preset_config(name: str) -> TrainConfig:
    """A fresh, independent copy of a preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return TrainConfig.from_dict(PRESETS[name].to_dict())


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Return ``config`` with the given fields replaced (None values are ignored), validated."""
    train_fields = {f.name for f in fields(TrainConfig)} - {"model"}
    train_changes, model_changes = {}, {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in MODEL_FLAG_FIELDS:
            model_changes[key] = value
        elif key in train_fields:
            train_changes[key] = value
        else:
            raise ConfigError(f"unknown config field {key!r}")
    model = dataclasses.replace(config.model, **model_changes)
    result = dataclasses.replace(config, model=model, **train_changes)
    result.validate()
    return result


def field_doc(cls: type, name: str) -> str:
    """The docstring written under a dataclass field (used for --help)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            return str(nxt.value.value)
    return ""


def _known(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {where} config field(s): {', '.join(unknown)}")
    return {k: v for k, v in data.items() if k != "model"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{_flag(name)} must be one of {', '.join(choices)}; got {value!r}")


def _int_range(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{_flag(name)} must be an integer from {low} to {high}; got {value!r}")


def _float_range(name: str, value: Any, low: float, high: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (low <= float(value) <= high):
        raise ConfigError(f"{_flag(name)} must be a number from {low:g} to {high:g}; got {value!r}")
