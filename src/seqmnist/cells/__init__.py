"""The recurrent cells, each declared once: ``CELL_SPECS`` maps a cell's name to its ``CellSpec``.

A spec is plain data, free of torch (config.py reads it for ``--cell``'s choices and help, and the
CLI's ``--help`` loads without torch). It names the module beside this one that builds and
initialises the cell (``seqmnist.cells.lstm`` ...), imported only when a model is built.

Who reads a spec: config.py (choices, help, which ``--gate-init`` a cell accepts), model.py
(``build_rnn``, the final states, the multiply-adds behind the FLOP figures), inspect.py (the
final states, the effective memory-gate bias), readout_probe.py (the range ``h`` can take) and
the benchmarks (through model.py).

Adding a cell: write ``cells/<name>.py`` with ``build(config) -> nn.Module`` (an ``nn.RNNBase``-
like module: ``batch_first`` input (B, T, F) -> ``output, state``) and, where it has a memory gate,
its gate blocks in PyTorch's packing order (``torch_rnn.init_gate_biases`` reads them); then add
one ``CellSpec`` entry below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Gate initialisations (``--gate-init``). "pytorch" leaves PyTorch's own draws untouched: it is the
# default, so every config and checkpoint written before the option existed means what it meant.
GATE_INITS = ("pytorch", "forget-bias", "chrono")
GATE_INIT_HELP = (
    "initial bias of the memory gate (LSTM forget gate f, GRU update gate z): pytorch (its "
    "U(+-1/sqrt(H)) draws, so f starts near 0.5: about one step of memory), forget-bias (b_f = "
    "--forget-bias), chrono (Tallec & Ollivier 2018: b_f ~ log U(1, T-1) over the T steps of the "
    "reading order, b_i = -b_f for an LSTM)"
)


@dataclass(frozen=True)
class CellSpec:
    """Everything the rest of seqmnist needs to know about one recurrent cell."""

    name: str  # the --cell value
    summary: str  # a few words for --help
    module: str  # seqmnist.cells.<module> builds it: build(config) -> nn.Module
    gates: tuple[str, ...]  # PyTorch's packing order of the gate blocks in weight_ih / bias_ih
    memory_gate: str | None  # the gate whose bias sets how long the state is kept; None: no gate
    gate_inits: tuple[str, ...]  # the --gate-init values it accepts
    cell_state: bool  # True: the state is (h_n, c_n), else h_n alone
    h_bound: str  # the range h can take, as inspect prints it: "(-1, 1)" for a tanh-squashed h

    def macs_per_step(self, inputs: int, hidden: int) -> int:
        """Multiply-adds of one step and direction: each gate block is x @ W_ih^T + h @ W_hh^T,
        ``len(gates) * H * (inputs + H)``; elementwise gate maths is left out."""
        return len(self.gates) * hidden * (inputs + hidden)

    def final_states(self, state: Any) -> tuple[Any, Any]:
        """The module's returned state -> (h_n, c_n or None), each (L*D, B, H)."""
        return (state[0], state[1]) if self.cell_state else (state, None)

    def builder(self) -> Callable[[Any], Any]:
        """The module's ``build(config)``, imported on first use (it imports torch)."""
        return importlib.import_module(f"{__name__}.{self.module}").build


CELL_SPECS: dict[str, CellSpec] = {
    spec.name: spec
    for spec in (
        CellSpec(
            "lstm",
            "LSTM",
            module="lstm",
            gates=("i", "f", "g", "o"),
            memory_gate="f",
            gate_inits=GATE_INITS,
            cell_state=True,
            h_bound="(-1, 1)",
        ),
        CellSpec(
            "gru",
            "GRU",
            module="gru",
            gates=("r", "z", "n"),
            memory_gate="z",
            gate_inits=GATE_INITS,
            cell_state=False,
            h_bound="(-1, 1)",
        ),
        CellSpec(
            "rnn",
            "tanh RNN",
            module="rnn",
            gates=("h",),
            memory_gate=None,
            gate_inits=("pytorch",),
            cell_state=False,
            h_bound="(-1, 1)",
        ),
        CellSpec(
            "irnn",
            "ReLU RNN, identity init",
            module="irnn",
            gates=("h",),
            memory_gate=None,
            gate_inits=("pytorch",),
            cell_state=False,
            h_bound="unbounded (ReLU)",
        ),
    )
}


def cell_spec(name: str) -> CellSpec:
    """The spec of ``name``; config validation has already refused unknown names."""
    return CELL_SPECS[name]


def gate_init_text(gate_init: str, forget_bias: float) -> str:
    """How the memory gate started, in a few words: 'pytorch', 'forget-bias 1', 'chrono'."""
    return f"forget-bias {forget_bias:g}" if gate_init == "forget-bias" else gate_init


def cell_help() -> str:
    """``--cell``'s help, from the specs."""
    return "recurrent cell: " + ", ".join(f"{s.name} ({s.summary})" for s in CELL_SPECS.values())
