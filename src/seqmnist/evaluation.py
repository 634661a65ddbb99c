"""Library side of ``seqmnist evaluate`` and ``seqmnist info``: a trained model on a data split,
and a description of a run or checkpoint."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from torch import nn

from .config import TrainConfig
from .data import Split, load_mnist, split_train_val
from .engine import evaluate
from .errors import SeqMnistError
from .metrics import confusion_matrix, per_class_report
from .model import count_parameters
from .options import is_number
from .trained import load_trained


def load_split(
    config: TrainConfig, split: str, data_dir: str | os.PathLike | None, download: bool
) -> Split:
    """The test set, or the exact validation split the run held out (same seed, same size)."""
    if split == "test":
        return load_mnist(data_dir, train=False, download=download)
    if config.val_size == 0:
        raise SeqMnistError(
            "this run held out no validation split (val_size = 0); use --split test"
        )
    _, val = split_train_val(
        load_mnist(data_dir, train=True, download=download), config.val_size, config.seed
    )
    return val


def score(
    model: nn.Module, split: Split, *, normalize: bool, amp: str = "off", batch_size: int = 1000
) -> dict[str, Any]:
    """A trained model on a labelled split: samples, accuracy, mean loss, per-class
    precision/recall/F1 and the confusion matrix (what summary.json and `evaluate` report)."""
    result = evaluate(
        model, split, batch_size=batch_size, normalize=normalize, amp=amp, return_outputs=True
    )
    matrix = confusion_matrix(result["predictions"], split.labels.cpu())
    return {
        "samples": result["samples"],
        "accuracy": result["accuracy"],
        "loss": result["loss"],
        "per_class": per_class_report(matrix),
        "confusion_matrix": matrix.tolist(),
    }


def evaluate_checkpoint(
    path: str | os.PathLike,
    *,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    device: str = "auto",
    batch_size: int = 1000,
) -> dict[str, Any]:
    """Accuracy, mean loss, per-class precision/recall/F1 and the confusion matrix."""
    trained = load_trained(path, device)
    config = trained.config
    data = load_split(config, split, data_dir, download).to(trained.device)
    scores = score(trained.model, data, normalize=config.normalize, batch_size=batch_size)
    return {"checkpoint": str(trained.checkpoint), "split": split, **scores}


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Config, parameter count, epoch and (for run directories) the training summary."""
    trained = load_trained(path)
    info: dict[str, Any] = {
        "checkpoint": str(trained.checkpoint),
        "format_version": trained.format_version,
        "arch": trained.arch,
        "epoch": trained.epoch,
        "model_config": asdict(trained.model.config),
        "train_config": trained.config.to_dict(),
        "parameters": count_parameters(trained.model),
    }
    summary = trained.summary()
    if summary is not None:
        info["summary"] = summary
    return info


def format_evaluation(result: dict[str, Any]) -> str:
    """``evaluate_checkpoint``'s result as text: headline, per-class table, confusion matrix."""
    import torch

    from .metrics import format_confusion, format_report

    return "\n".join(
        [
            f"{result['checkpoint']} on the {result['split']} split ({result['samples']:,} images)",
            f"accuracy {result['accuracy']:.2%}  mean loss {result['loss']:.4f}\n",
            format_report(result["per_class"]),
            "\nconfusion matrix (rows: true digit, columns: predicted digit)",
            format_confusion(torch.tensor(result["confusion_matrix"])),
        ]
    )


def format_description(info: dict[str, Any]) -> str:
    """``describe``'s result as a few aligned lines."""
    m = info["model_config"]
    lines = [
        f"checkpoint   {info['checkpoint']} "
        f"(format v{info['format_version']}, epoch {info['epoch']})",
        f"model        {info['arch']}: {m['cell'].upper()} "
        f"hidden={m['hidden']} layers={m['layers']} "
        f"{'bidirectional' if m['bidirectional'] else 'unidirectional'} readout={m['readout']} "
        f"dropout={m['dropout']}{' softmax-output' if m['softmax_output'] else ''}"
        f"{_gate_text(m)}",
        f"reads        {_order_text(m)}",
        f"parameters   {info['parameters']:,}",
    ]
    t = info["train_config"]
    lines.append(
        f"training     preset={t['preset']} epochs={t['epochs']} "
        f"batch={t['batch_size']} lr={t['lr']} "
        f"optimizer={t['optimizer']} schedule={t['schedule']} seed={t['seed']}"
    )
    s = info.get("summary")
    if s:
        lines.append("result       " + _result_text(s))
    return "\n".join(lines)


def _gate_text(m: dict[str, Any]) -> str:
    """' gate-init=chrono' for a gated cell (configs from before the option read 'pytorch')."""
    from .cells import cell_spec, gate_init_text

    if cell_spec(m["cell"]).memory_gate is None:
        return ""
    return " gate-init=" + gate_init_text(m.get("gate_init", "pytorch"), m.get("forget_bias", 1.0))


def _order_text(m: dict[str, Any]) -> str:
    from .config import ModelConfig

    config = ModelConfig.from_dict(m)
    text = f"{config.order}: {config.steps} steps of {config.features_per_step} pixels"
    if config.order == "permuted":
        text += f" (permutation seed {config.permutation_seed})"
    return text


def _result_text(s: dict[str, Any]) -> str:
    """summary.json's headline; a damaged or partial summary shows what it has."""

    def number(key: str, fmt: str) -> str:
        value = s.get(key)
        return format(value, fmt) if is_number(value) else "?"

    return (
        f"test accuracy {number('test_acc', '.2%')} "
        f"(loss {number('test_loss', '.4f')}), best epoch "
        f"{s.get('best_epoch', '?')}, {number('train_seconds', '.1f')}s training "
        f"on {s.get('device', '?')} "
        f"x{s.get('world_size', '?')}" + _chance_text(s)
    )


def _chance_text(s: dict[str, Any]) -> str:
    """How long the run sat at chance (summaries from before it was kept say nothing)."""
    stuck, left = s.get("epochs_at_chance"), s.get("left_chance_epoch")
    if not is_number(stuck) or not stuck:
        return ""
    return f"; {stuck} epoch(s) at chance, " + (
        f"left it in epoch {left}" if is_number(left) else "never left it"
    )
