"""What the recurrent layer returns, checked on real tensors rather than asserted in prose.

The tutorial we start from claims that ``output[:, -1, :]`` of a bidirectional LSTM equals its
final hidden state ``h_n``. Half of that is wrong. ``nn.LSTM(batch_first=True)`` returns

    output (B, T, D*H)  every time step's hidden state of the LAST layer, [forward | backward]
    h_n    (L*D, B, H)  the final hidden state of every layer and direction
    c_n    (L*D, B, H)  the final cell state (LSTM only; never part of ``output``)

with B images, T time steps (28 rows when reading row by row), H hidden units, D = 2 directions,
L layers; row ``l*D + d`` of ``h_n`` is layer l, direction d. The forward direction ends at the
last step, so its final state is ``output[:, -1, :H]`` (= ``h_n[-2]``). The backward direction
reads the steps in reverse and ends at step 0: its final state is ``output[:, 0, H:]``
(= ``h_n[-1]``); ``output[:, -1, H:]`` is the backward state after reading only the last step.
``inspect_model`` measures all of this.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .cells import cell_spec, gate_init_text
from .cells.torch_rnn import effective_memory_bias
from .config import ModelConfig
from .model import SeqClassifier, build_model

# allclose tolerance: the relations that hold are exact (same numbers copied), so this is generous.
ATOL = 1e-6


def default_model(seed: int = 0) -> SeqClassifier:
    """The default-config model with random (seeded) weights, for inspection without a run."""
    torch.manual_seed(seed)
    return build_model(ModelConfig()).eval()


def _relation(
    name: str, meaning: str, a: torch.Tensor, b: torch.Tensor, expected_equal: bool
) -> dict[str, Any]:
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    return {
        "relation": name,
        "meaning": meaning,
        "equal": bool(torch.allclose(a, b, atol=ATOL, rtol=0.0)),
        "expected_equal": expected_equal,
        "max_abs_diff": diff,
        # the scale a difference is read against: the largest |value| compared (h lies in (-1, 1))
        "scale": float(torch.cat([a.abs().flatten(), b.abs().flatten()]).max())
        if a.numel()
        else 0.0,
    }


@torch.no_grad()
def inspect_model(model: SeqClassifier | None, images: torch.Tensor) -> dict[str, Any]:
    """Run one batch through ``model.rnn`` and report every tensor's shape and how the slices of
    ``output`` relate to the rows of ``h_n``.

    ``images``: (B, 28, 28) float, already scaled/normalised as the model was trained.
    ``model`` None: the default config with seeded random weights.
    Returns a JSON-friendly dict; ``format_inspection`` turns it into text.
    """
    if model is None:
        model = default_model()
    model.eval()
    cfg = model.config
    x = model.read(images.float())  # (B, 28, 28) -> (B, T, F) in the model's reading order
    output, state = model.rnn(x)  # output (B, T, D*H)
    h_n, c_n = cell_spec(cfg.cell).final_states(state)  # (L*D, B, H) each
    readout = model.readout(output, h_n)  # (B, D*H)
    logits = model.head(model.dropout(readout))  # (B, 10)

    H = cfg.hidden
    D = 2 if cfg.bidirectional else 1
    relations = _final_state_relations(output, h_n, H, D) + [
        _readout_relation(cfg.readout, readout, output, h_n, D)
    ]

    return {
        "model": {
            "cell": cfg.cell,
            "hidden": H,
            "layers": cfg.layers,
            "bidirectional": cfg.bidirectional,
            "directions": D,
            "readout": cfg.readout,
            "softmax_output": cfg.softmax_output,
            "order": cfg.order,
            "gate_init": cfg.gate_init,
            "forget_bias": cfg.forget_bias,
        },
        "memory_gate": _memory_gate(model),
        "shapes": {
            "input": list(x.shape),
            "output": list(output.shape),
            "h_n": list(h_n.shape),
            "c_n": list(c_n.shape) if c_n is not None else None,
            "readout": list(readout.shape),
            "logits": list(logits.shape),
        },
        "relations": relations,
        "all_as_expected": all(r["equal"] == r["expected_equal"] for r in relations),
    }


def _memory_gate(model: SeqClassifier) -> dict[str, Any] | None:
    """The memory gate's effective bias (b_ih + b_hh; LSTM f, GRU z) as the weights hold it now:
    mean, min and max per layer and direction, in h_n's row order. None for an ungated cell."""
    spec = cell_spec(model.config.cell)
    bias = effective_memory_bias(model.rnn, spec)  # (L*D, H)
    if bias is None:
        return None
    return {
        "gate": spec.memory_gate,
        "mean": bias.mean(dim=1).tolist(),
        "min": bias.min(dim=1).values.tolist(),
        "max": bias.max(dim=1).values.tolist(),
    }


def _final_state_relations(
    output: torch.Tensor, h_n: torch.Tensor, H: int, D: int
) -> list[dict[str, Any]]:
    """Which slices of output (B, T, D*H) are the final states h_n (L*D, B, H)."""
    if D == 1:
        return [
            _relation(
                "output[:, -1, :] == h_n[-1]",
                "the only direction's final state (after the last step)",
                output[:, -1, :],
                h_n[-1],
                True,
            )
        ]
    return [
        _relation(
            "output[:, -1, :H] == h_n[-2]",
            "forward direction's final state (after the last step)",
            output[:, -1, :H],
            h_n[-2],
            True,
        ),
        _relation(
            "output[:, 0, H:] == h_n[-1]",
            "backward direction's final state (after reading step 0)",
            output[:, 0, H:],
            h_n[-1],
            True,
        ),
        _relation(
            "output[:, -1, H:] == h_n[-1]",
            "the article's claim: false, this backward state has read only the last step",
            output[:, -1, H:],
            h_n[-1],
            False,
        ),
    ]


def _readout_relation(
    kind: str, readout: torch.Tensor, output: torch.Tensor, h_n: torch.Tensor, D: int
) -> dict[str, Any]:
    """What the classifier head actually reads, checked against its definition."""
    if kind == "final":
        final = torch.cat(list(h_n[-D:]), dim=1)  # (B, D*H): [forward, backward]
        return _relation(
            "readout == cat(h_n[-2], h_n[-1])" if D == 2 else "readout == h_n[-1]",
            "the model's readout: the final state of "
            + ("both directions" if D == 2 else "its one direction"),
            readout,
            final,
            True,
        )
    if kind == "last":
        return _relation(
            "readout == output[:, -1, :]",
            "the model's readout: the last time step of output (the article's)",
            readout,
            output[:, -1, :],
            True,
        )
    return _relation(
        "readout == output.mean(dim=1)",
        "the model's readout: output averaged over time",
        readout,
        output.mean(dim=1),
        True,
    )


_READOUT_TEXT = {
    "final": (
        "the final state of each direction (forward after the last step, backward after step 0)"
    ),
    "last": (
        "output[:, -1, :], the article's readout: its backward half has seen only the last step"
    ),
    "mean": "the mean of output over the time steps",
}


def format_inspection(info: dict[str, Any]) -> str:
    """Shapes and relations as plain text, ending with what the bidirectional case means."""
    m, s = info["model"], info["shapes"]
    B, T, F = s["input"]
    H, D, L = m["hidden"], m["directions"], m["layers"]
    cell = m["cell"].upper()
    lines = [
        f"model: {cell} hidden={H} layers={L} {'bidirectional' if D == 2 else 'unidirectional'} "
        f"readout={m['readout']}",
        f"B={B} images, T={T} time steps ({m['order']}), F={F} features (pixels per step), "
        f"H={H}, D={D}, L={L}",
        "",
        "tensor      shape            what it is",
        f"input       {_shape(s['input']):<16} (B, T, F) one image = {T} steps of {F} pixels",
        f"output      {_shape(s['output']):<16} (B, T, D*H) last layer's hidden state at every step"
        + (", [forward | backward]" if D == 2 else ""),
        f"h_n         {_shape(s['h_n']):<16} "
        "(L*D, B, H) final hidden state of each layer and direction",
    ]
    if s["c_n"] is not None:
        lines.append(
            f"c_n         {_shape(s['c_n']):<16} "
            "(L*D, B, H) final cell state (LSTM only; not in output)"
        )
    lines += [
        f"readout     {_shape(s['readout']):<16} (B, D*H) what the classifier reads",
        f"logits      {_shape(s['logits']):<16} (B, 10) one score per digit"
        + (" (this model then applies softmax: the article's flaw)" if m["softmax_output"] else ""),
        "",
        "checked on this batch (torch.allclose, atol 1e-6):",
    ]
    for r in info["relations"]:
        verdict = "holds" if r["equal"] else "FALSE"
        surprise = "" if r["equal"] == r["expected_equal"] else "  <- unexpected"
        lines.append(
            f"  {r['relation']:<34} {verdict:<5} max |diff| = {r['max_abs_diff']:.3g} "
            f"(|values| up to {r.get('scale', 0.0):.3g})  {r['meaning']}{surprise}"
        )
    lines.append("")
    if D == 2:
        lines.append(
            "So for a bidirectional LSTM, output[:, -1, :] is NOT the final state of "
            "both directions:\n"
            "its forward half is the forward final state (= h_n[-2]), "
            "but its backward half has read\n"
            f"only the last {'row' if m['order'] == 'rows' else 'step'}. "
            "The backward direction's final state is output[:, 0, H:] (= h_n[-1])."
        )
    else:
        lines.append("For a unidirectional model, output[:, -1, :] is the final state h_n[-1].")
    if L > 1:
        lines.append(
            f"output holds only the last layer; h_n[:{(L - 1) * D}] "
            "are the earlier layers' final states."
        )
    lines.append(f"This model's readout: {readout_text(m['readout'], D)}.")
    return "\n".join(lines + _memory_gate_lines(info))


def _memory_gate_lines(info: dict[str, Any]) -> list[str]:
    """The memory gate's effective bias, and what it means for how long the state is kept."""
    m, gate = info["model"], info.get("memory_gate")
    if gate is None:
        return []
    name = {"f": "forget gate f", "z": "update gate z"}.get(gate["gate"], f"gate {gate['gate']}")
    lines = [
        "",
        f"{name}: effective bias b_ih + b_hh (initialised: "
        f"{gate_init_text(m['gate_init'], m['forget_bias'])}); sigmoid(b) near 1 keeps the "
        "state for about 1 / (1 - sigmoid(b)) steps",
    ]
    for row, (mean, low, high) in enumerate(zip(gate["mean"], gate["min"], gate["max"])):
        lines.append(
            f"  h_n[{row}]  mean {mean:+.3f}  min {low:+.3f}  max {high:+.3f}  "
            f"(sigmoid(mean) = {1 / (1 + math.exp(-mean)):.3f})"
        )
    return lines


def readout_text(kind: str, directions: int) -> str:
    """What the readout reads, in words that fit the model's direction count."""
    if directions == 2:
        return _READOUT_TEXT[kind]
    return {
        "final": "the final state of its one direction (after the last step)",
        "last": "output[:, -1, :], the final state of its one direction (= h_n[-1])",
        "mean": "the mean of output over the time steps",
    }[kind]


def _shape(shape: list[int]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"
