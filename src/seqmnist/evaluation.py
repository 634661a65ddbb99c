"""Library side of ``seqmnist evaluate`` and ``seqmnist info``: a trained model on a data split,
and a description of a run or checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint, model_from_checkpoint, read_summary, train_config_from_checkpoint
from .config import TrainConfig
from .data import Split, load_mnist, split_train_val
from .engine import evaluate
from .errors import SeqMnistError
from .metrics import confusion_matrix, per_class_report
from .model import count_parameters



def load_split(config: TrainConfig, split: str, data_dir: str | os.PathLike | None, download: bool) -> Split:
    """The test set, or the exact validation split the run held out (same seed, same size)."""
    if split == "test":
        return load_mnist(data_dir, train=False, download=download)
    if config.val_size == 0:
        raise SeqMnistError("this run held out no validation split (val_size = 0); use --split test")
    _, val = split_train_val(load_mnist(data_dir, train=True, download=download), config.val_size, config.seed)
    return val


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
    from .train import select_device

    dev = select_device(device)
    ckpt = load_checkpoint(path, map_location=dev)
    model = model_from_checkpoint(ckpt).to(dev)
    config = train_config_from_checkpoint(ckpt) or TrainConfig()
    data = load_split(config, split, data_dir, download).to(dev)
    result = evaluate(model, data, batch_size=batch_size, normalize=config.normalize, return_outputs=True)
    matrix = confusion_matrix(result["predictions"], data.labels.cpu())
    return {
        "checkpoint": ckpt["path"],
        "split": split,
        "samples": result["samples"],
        "accuracy": result["acc"],
        "loss": result["loss"],
        "per_class": per_class_report(matrix),
        "confusion_matrix": matrix.tolist(),
    }


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Config, parameter count, epoch and (for run directories) the training summary."""
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    info: dict[str, Any] = {
        "checkpoint": ckpt["path"],
        "format_version": ckpt["version"],
        "arch": ckpt["arch"],
        "epoch": ckpt.get("epoch"),
        "model_config": ckpt["model_config"],
        "train_config": ckpt.get("train_config"),
        "parameters": count_parameters(model),
    }
    summary = read_summary(Path(ckpt["path"]).parent)
    if summary is not None:
        info["summary"] = summary
    return info
