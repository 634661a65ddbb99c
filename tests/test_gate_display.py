"""The gate initialisation is shown wherever a model is described (issue 20): inspect (the
effective memory-gate bias of the weights), info, the training start line, config.json."""

from __future__ import annotations

import json

import torch

from conftest import cli_train
from seqmnist.config import ModelConfig
from seqmnist.evaluation import describe, format_description
from seqmnist.inspect import format_inspection, inspect_model
from seqmnist.model import build_model


def _inspect(**kw) -> dict:
    torch.manual_seed(0)
    return inspect_model(build_model(ModelConfig(hidden=6, **kw)), torch.rand(2, 28, 28))


def test_inspect_reports_the_effective_forget_bias():
    info = _inspect(gate_init="forget-bias", forget_bias=2.5, layers=2)
    gate = info["memory_gate"]
    assert gate["gate"] == "f" and len(gate["mean"]) == 4  # L*D rows, as h_n
    assert gate["mean"] == gate["min"] == gate["max"] == [2.5] * 4
    text = format_inspection(info)
    assert "forget gate f: effective bias b_ih + b_hh (initialised: forget-bias 2.5)" in text
    assert "h_n[3]  mean +2.500" in text and "sigmoid(mean) = 0.924" in text
    gru = format_inspection(_inspect(cell="gru", gate_init="chrono"))
    assert "update gate z" in gru and "initialised: chrono" in gru


def test_inspect_of_pytorch_init_and_of_an_ungated_cell():
    info = _inspect()  # PyTorch's init: two U(+-1/sqrt(6)) draws added, so |b| < 0.82
    assert all(abs(v) < 2 / 6**0.5 for v in info["memory_gate"]["min"] + info["memory_gate"]["max"])
    rnn = _inspect(cell="rnn")
    assert rnn["memory_gate"] is None and "effective bias" not in format_inspection(rnn)


def test_info_start_line_and_config_json_name_the_gate_init(synthetic_data_dir, tmp_path, capsys):
    run = tmp_path / "chrono"
    assert cli_train(synthetic_data_dir, run, "--gate-init", "chrono", "--no-plots", epochs=1) == 0
    assert json.loads((run / "config.json").read_text())["model"]["gate_init"] == "chrono"
    info = describe(run)
    assert "gate-init=chrono" in format_description(info)
    # a config from before the option: PyTorch's init; an ungated cell says nothing
    for key in ("gate_init", "forget_bias"):
        del info["model_config"][key]
    assert "gate-init=pytorch" in format_description(info)
    info["model_config"]["cell"] = "rnn"
    assert "gate-init" not in format_description(info)
