"""The cell registry and gate initialisation (issue 20): every cell declared once, the memory
gate's effective bias is what --gate-init says, PyTorch's init stays bit for bit what it was."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch
from torch import nn

from seqmnist.cells import CELL_SPECS, GATE_INITS, cell_spec
from seqmnist.cells.torch_rnn import effective_memory_bias
from seqmnist.config import CELLS, ModelConfig
from seqmnist.errors import ConfigError
from seqmnist.model import build_model, build_rnn


def _rnn(**kw) -> nn.RNNBase:
    return build_model(ModelConfig(**kw)).rnn


def _slice(spec_name: str, gate: str, hidden: int) -> slice:
    k = cell_spec(spec_name).gates.index(gate)
    return slice(k * hidden, (k + 1) * hidden)


def test_config_choices_and_help_come_from_the_registry():
    assert tuple(CELL_SPECS) == CELLS
    assert ModelConfig.__dataclass_fields__["gate_init"].metadata["choices"] == GATE_INITS
    for name in CELL_SPECS:
        assert name in ModelConfig.__dataclass_fields__["cell"].metadata["help"]


def test_the_declaration_loads_without_torch():
    code = "import sys, seqmnist.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", list(CELL_SPECS))
def test_each_spec_builds_its_cell_and_says_how_its_states_come_out(name):
    spec = cell_spec(name)
    model = build_model(ModelConfig(cell=name, hidden=8, bidirectional=False)).eval()
    output, state = model.rnn(torch.randn(2, 28, 28))
    h_n, c_n = spec.final_states(state)
    assert h_n.shape == (1, 2, 8) and torch.equal(output[:, -1], h_n[-1])
    assert (c_n is not None) == spec.cell_state == isinstance(model.rnn, nn.LSTM)
    # The declared gate blocks are PyTorch's packing: (G*H, F) input weights.
    assert model.rnn.weight_ih_l0.shape == (len(spec.gates) * 8, 28)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_pytorch_init_is_untouched_bit_for_bit(cell):
    """The default draws exactly what nn.LSTM / nn.GRU draw, and nothing more: the generator is
    where it would be without seqmnist, so seeded runs reproduce."""
    torch.manual_seed(5)
    ours = build_rnn(ModelConfig(cell=cell, hidden=8, layers=2))
    after_ours = torch.rand(4)
    torch.manual_seed(5)
    theirs = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](28, 8, 2, batch_first=True, bidirectional=True)
    assert torch.equal(after_ours, torch.rand(4))
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("cell,gate", [("lstm", "f"), ("gru", "z")])
def test_forget_bias_is_the_effective_bias_and_leaves_the_rest_alone(cell, gate):
    torch.manual_seed(1)
    plain = _rnn(cell=cell, hidden=6, layers=2)
    torch.manual_seed(1)
    rnn = _rnn(cell=cell, hidden=6, layers=2, gate_init="forget-bias", forget_bias=2.5)
    memory = _slice(cell, gate, 6)
    effective = effective_memory_bias(rnn, cell_spec(cell))
    assert effective.shape == (4, 6) and torch.equal(effective, torch.full((4, 6), 2.5))
    for name, param in rnn.named_parameters():
        if name.startswith("bias_hh"):
            assert not param[memory].any(), name  # the other vector's slice is zeroed
        reference = dict(plain.named_parameters())[name]
        if name.startswith("bias"):  # every other gate keeps PyTorch's draw
            keep = torch.ones(len(param), dtype=torch.bool)
            keep[memory] = False
            assert torch.equal(param[keep], reference[keep]), name
        else:
            assert torch.equal(param, reference), name


def test_chrono_draws_log_uniform_forget_bias_and_the_opposite_input_bias():
    torch.manual_seed(0)
    config = ModelConfig(order="pixels", hidden=256, bidirectional=False, gate_init="chrono")
    rnn = build_model(config).rnn
    f, i = _slice("lstm", "f", 256), _slice("lstm", "i", 256)
    b_f = (rnn.bias_ih_l0[f] + rnn.bias_hh_l0[f]).detach()
    assert torch.equal(b_f, effective_memory_bias(rnn, cell_spec("lstm"))[0])
    # T = 784 steps: exp(b_f) ~ U(1, 783), so b_f in [0, log 783] with its mass near the top.
    assert b_f.min() >= 0 and b_f.max() <= math.log(783) + 1e-6
    assert 200 < float(b_f.exp().mean()) < 580  # U(1, 783) has mean 392
    assert torch.equal((rnn.bias_ih_l0[i] + rnn.bias_hh_l0[i]).detach(), -b_f)
    assert not rnn.bias_hh_l0[f].any() and not rnn.bias_hh_l0[i].any()
    # T comes from the reading order: 28 rows -> b_f <= log 27.
    rows = _rnn(hidden=64, gate_init="chrono")
    assert float(effective_memory_bias(rows, cell_spec("lstm")).max()) <= math.log(27) + 1e-6


def test_gru_update_gate_follows_the_documented_rule_and_its_bias_keeps_memory():
    """nn.GRU's documented step, h' = (1 - z) * n + z * h, by hand against the module; with a
    large update-gate bias z -> 1 and the state is kept."""
    torch.manual_seed(2)
    rnn = _rnn(cell="gru", hidden=5, bidirectional=False, gate_init="forget-bias", forget_bias=3.0)
    x, h = torch.randn(4, 1, 28), torch.randn(1, 4, 5)
    w_ih, w_hh, b_ih, b_hh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
    gi, gh = x[:, 0] @ w_ih.T + b_ih, h[0] @ w_hh.T + b_hh  # (B, 3H) each, packed r, z, n
    r = torch.sigmoid(gi[:, :5] + gh[:, :5])
    z = torch.sigmoid(gi[:, 5:10] + gh[:, 5:10])
    n = torch.tanh(gi[:, 10:] + r * gh[:, 10:])
    expected = (1 - z) * n + z * h[0]
    with torch.no_grad():
        _, h_next = rnn(x, h)
    assert torch.allclose(h_next[0], expected, atol=1e-6)
    with torch.no_grad():
        keeper = _rnn(cell="gru", hidden=5, bidirectional=False, gate_init="forget-bias",
                      forget_bias=20.0)  # fmt: skip
        _, kept = keeper(x, h)
    assert torch.allclose(kept, h, atol=1e-6)


@pytest.mark.parametrize("gate_init", ["forget-bias", "chrono"])
def test_gate_init_runs_on_the_meta_device(gate_init):
    """Checkpoints build a skeleton on the meta device first."""
    with torch.device("meta"):
        model = build_model(ModelConfig(hidden=8, order="pixels", gate_init=gate_init))
    assert all(p.is_meta for p in model.parameters())
    with torch.device("meta"):
        assert build_model(ModelConfig(cell="irnn", hidden=8)).rnn.weight_hh_l0.is_meta


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"cell": "rnn", "gate_init": "chrono"}, "--cell rnn has no gates"),
        ({"cell": "irnn", "gate_init": "forget-bias"}, "--cell irnn has no gates"),
        ({"cell": "rnn", "forget_bias": 2.0}, "--cell rnn has no gates"),
        (
            {"gate_init": "chrono", "forget_bias": 2.0},
            "--forget-bias 2 needs --gate-init forget-bias",
        ),
        ({"gate_init": "bogus"}, "--gate-init must be one of pytorch, forget-bias, chrono"),
        ({"forget_bias": 99.0, "gate_init": "forget-bias"}, "--forget-bias must be a number"),
        ({"gate_init": "chrono", "order": "pixels", "pixels_per_step": 392}, "at least 3 steps"),
    ],
)
def test_gate_options_are_refused_in_one_line(overrides, match):
    with pytest.raises(ConfigError, match=match) as info:
        ModelConfig(**overrides).validate()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "overrides,given",
    [
        ({"cell": "rnn", "forget_bias": 2.0}, "takes no --forget-bias 2 "),
        ({"cell": "irnn", "gate_init": "chrono"}, "takes no --gate-init chrono "),
    ],
)
def test_a_gateless_cell_names_the_gate_option_it_was_given(overrides, given):
    """--cell rnn --forget-bias 2 used to read 'takes neither --gate-init pytorch nor
    --forget-bias (use --gate-init pytorch ...)': refusing the very init it then advised."""
    with pytest.raises(ConfigError, match="has no gates") as info:
        ModelConfig(**overrides).validate()
    assert given in str(info.value)
    assert "--gate-init pytorch nor" not in str(info.value)


def test_switching_gate_init_from_a_saved_forget_bias_config_says_how(tmp_path, capsys):
    """A config.json of a `--gate-init forget-bias --forget-bias 3` run, then `--config it
    --gate-init chrono`: the user typed no --forget-bias, so the error says which value and how to
    reset it (it used to read only '--forget-bias needs --gate-init forget-bias')."""
    from seqmnist.cli import main

    saved = tmp_path / "config.json"
    fb3 = ["--gate-init", "forget-bias", "--forget-bias", "3"]
    assert main(["train", *fb3, "--print-config"]) == 0
    saved.write_text(capsys.readouterr().out)
    assert main(["train", "--config", str(saved), "--gate-init", "chrono", "--print-config"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--forget-bias 3 needs --gate-init forget-bias" in err and "\n" not in err
    assert "--forget-bias 1" in err
    argv = ["train", "--config", str(saved), "--gate-init", "chrono", "--forget-bias", "1"]
    assert main([*argv, "--print-config"]) == 0
    assert '"gate_init": "chrono"' in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags,error",
    [
        (["--forget-bias", "1"], "takes effect only with --gate-init forget-bias"),
        (["--gate-init", "chrono", "--forget-bias", "1"], "this run has --gate-init chrono"),
        (["--cell", "rnn", "--forget-bias", "1"], "--cell rnn has no gates"),
        (["--gate-init", "forget-bias", "--forget-bias", "1"], None),
    ],
)
def test_a_forget_bias_flag_that_sets_nothing_is_refused(flags, error, capsys):
    """--forget-bias 1 (the field's default) with PyTorch's init was accepted without a word,
    and the model kept PyTorch's random gate biases (found by the issue-20 review)."""
    from seqmnist.cli import main

    code = main(["train", *flags, "--print-config"])
    err = capsys.readouterr().err.strip()
    if error is None:
        assert code == 0
    else:
        assert code != 0 and error in err and "\n" not in err


def test_configs_written_before_gate_init_read_as_pytorch():
    old = {k: v for k, v in asdict(ModelConfig()).items() if k not in ("gate_init", "forget_bias")}
    config = ModelConfig.from_dict(old)
    assert (config.gate_init, config.forget_bias) == ("pytorch", 1.0)


def test_inspect_reads_the_range_of_h_from_the_spec(monkeypatch):
    """readout_probe used to list the bounded cells by name ("lstm", "gru", "rnn"), so a new cell
    meant editing it too; the bound is now part of the one spec."""
    from dataclasses import replace

    from seqmnist.readout_probe import readout_probe

    monkeypatch.setitem(CELL_SPECS, "rnn", replace(CELL_SPECS["rnn"], h_bound="(-7, 7)"))
    torch.manual_seed(0)
    model = build_model(ModelConfig(cell="rnn", hidden=4)).eval()
    images, labels = torch.randn(6, 28, 28), torch.arange(6)
    assert readout_probe(model, images, labels, blank_last=0.0)["h_bound"] == "(-7, 7)"
    assert {s.name: s.h_bound for s in CELL_SPECS.values()}["irnn"] == "unbounded (ReLU)"
