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
    model: nn.Module,
    split: Split,
    *,
    normalize: bool,
    amp: str = "off",
    batch_size: int = 1000,
    mistakes: bool = False,
) -> dict[str, Any]:
    """A trained model on a labelled split: samples, accuracy, mean loss, per-class
    precision/recall/F1 and the confusion matrix (what summary.json and `evaluate` report);
    with ``mistakes``, every misclassified image's index in the split, true and predicted
    digit and the probability given to the prediction."""
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
        **({"mistakes": _mistakes(result, split)} if mistakes else {}),
    }


def _mistakes(result: dict[str, Any], split: Split) -> list[dict[str, Any]]:
    """Misclassified images by their index in the split (``--index`` of show and inspect)."""
    predictions, labels = result["predictions"], split.labels.cpu()
    wrong = (predictions != labels).nonzero().flatten().tolist()
    return [
        {
            "index": i,
            "true": int(labels[i]),
            "pred": int(predictions[i]),
            "confidence": float(result["probabilities"][i, predictions[i]]),
        }
        for i in wrong
    ]


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
    scores = score(
        trained.model, data, normalize=config.normalize, batch_size=batch_size, mistakes=True
    )
    return {
        "checkpoint": str(trained.checkpoint),
        "split": split,
        **scores,
        "softmax_output": config.model.softmax_output,  # its loss has a floor (format_evaluation)
    }


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

    from .metrics import format_confusion, format_report, softmax_floor_note

    floor_note = f"\n{softmax_floor_note()}" if result.get("softmax_output") else ""
    return "\n".join(
        [
            f"{result['checkpoint']} on the {result['split']} split ({result['samples']:,} images)",
            f"accuracy {result['accuracy']:.2%}  mean loss {result['loss']:.4f}{floor_note}\n",
            format_report(result["per_class"]),
            "\nconfusion matrix (rows: true digit, columns: predicted digit)",
            format_confusion(torch.tensor(result["confusion_matrix"])),
            *_mistakes_text(result.get("mistakes"), result["split"]),
        ]
    )


def _mistakes_text(mistakes: list[dict[str, Any]] | None, split: str) -> list[str]:
    """The most confident mistakes by index, to open with `show` or `inspect --index`."""
    if not mistakes:
        return []
    worst = sorted(mistakes, key=lambda m: -m["confidence"])[:10]
    listed = ", ".join(f"#{m['index']} {m['true']}→{m['pred']}" for m in worst)
    where = "" if split == "test" else f" (indices of the {split} split)"
    return [
        f"\n{len(mistakes):,} mistakes{where}; the most confident (index true→predicted): "
        f"{listed}; --json lists them all"
    ]


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
    if s:  # a finished run: its result, and what reproduces it
        lines.append("result       " + _result_text(s))
        lines.append("reproduce    " + _reproduce_text(t, s))
    return "\n".join(lines)


def _reproduce_text(t: dict[str, Any], s: dict[str, Any] | None) -> str:
    """What the seed fixes. On the CPU: the same numbers bit for bit with the same thread count
    and process count (each changes the order of float additions). On a GPU, PyTorch does not
    promise bit-identical kernels, so only the data order, augmentation and first weights."""
    device = (s.get("device_type") or str(s.get("device", "")).split(":")[0]) if s else ""
    if device and device != "cpu":
        return (
            f"seed={t['seed']} fixes the data order, augmentation and initial weights; on {device} "
            "the last digits may differ from run to run"
        )
    if s and all(k in s for k in ("threads", "world_size")):
        where = f"on the CPU with {s['threads']} threads and {s['world_size']} process(es)"
    else:
        where = "on the CPU with the same thread count and process count"
    return (
        f"seed={t['seed']} gives this result bit for bit {where}; other --threads, another "
        "process count or device type give other last digits"
    )


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
