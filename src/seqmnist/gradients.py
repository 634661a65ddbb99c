"""Why long sequences are hard, measured: how much of the loss's gradient reaches each time step.

``nn.LSTM`` (and GRU, RNN) run the whole sequence in one fused call, so the hidden state of each
step is not a tensor autograd can report on. ``unroll`` runs the same weights one step at a time
(``nn.LSTMCell`` and kin, every layer and direction), keeping each step's hidden state ``h_t``;
after one backward pass, ``h_t.grad`` is dL/dh_t, everything the loss asks of step t through all
later steps. A tanh RNN multiplies that gradient by its recurrent Jacobian at every step back, so
it shrinks (vanishes) or grows (explodes) geometrically with distance from the readout; an LSTM's
cell state carries it further. ``step_gradients`` reports both that and dL/dx_t, the gradient
with respect to each input step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .model import SeqClassifier

_CELL_OF = {nn.LSTM: nn.LSTMCell, nn.GRU: nn.GRUCell, nn.RNN: nn.RNNCell}


def _cell(rnn: nn.RNNBase, layer: int, direction: int) -> nn.RNNCellBase:
    """The single-step cell with the weights of one layer and direction of ``rnn``."""
    suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
    inputs = rnn.input_size if layer == 0 else rnn.hidden_size * (2 if rnn.bidirectional else 1)
    extra = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
    cell = _CELL_OF[type(rnn)](inputs, rnn.hidden_size, bias=rnn.bias, **extra)
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if rnn.bias else [])
    cell.load_state_dict({n: getattr(rnn, n + suffix).detach() for n in names})
    return cell.to(rnn.weight_ih_l0.device)


def unroll(
    rnn: nn.RNNBase, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, list[list[torch.Tensor]]]:
    """``rnn(x)`` one step at a time: output (B, T, D*H), h_n (L*D, B, H), and the last layer's
    hidden state at every step, ``steps[d][t]`` (B, H) for direction d at time position t
    (the backward direction reaches position t after reading T-1 down to t). Eval mode only:
    dropout between layers is left out."""
    if type(rnn) not in _CELL_OF or getattr(rnn, "proj_size", 0):
        raise TypeError(f"cannot unroll a {type(rnn).__name__}")
    directions = 2 if rnn.bidirectional else 1
    finals, layer_input, steps = [], x, []
    for layer in range(rnn.num_layers):
        steps = []
        for d in range(directions):
            cell, state = _cell(rnn, layer, d), None
            hs: list[torch.Tensor] = [None] * x.shape[1]  # type: ignore[list-item]
            times = range(x.shape[1] - 1, -1, -1) if d == 1 else range(x.shape[1])
            for t in times:
                state = cell(layer_input[:, t], state)  # (B, H), or (h, c) for an LSTM
                hs[t] = state[0] if isinstance(state, tuple) else state
            finals.append(hs[0] if d == 1 else hs[-1])
            steps.append(hs)
        # (B, T, D*H): each position's [forward | backward] states, as nn.LSTM lays them out
        layer_input = torch.cat([torch.stack(hs, dim=1) for hs in steps], dim=2)
    return layer_input, torch.stack(finals), steps


def _forward_with_states(model: SeqClassifier, x: torch.Tensor) -> tuple[Any, ...]:
    output, h_n, steps = unroll(model.rnn, x)
    for hs in steps:
        for h in hs:
            h.retain_grad()
    out = model.head(model.dropout(model.readout(output, h_n)))  # (B, 10)
    if model.config.softmax_output:  # as training sees it: the loss on probabilities
        out = torch.softmax(out, dim=1)
    return output, out, steps


def step_gradients(
    model: SeqClassifier, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, Any]:
    """Mean over the images of |dL/dx_t| and |dL/dh_t| (L2 norms) for every time step t.

    ``images`` (B, 28, 28) float as the model was trained on; L is the training loss
    (cross-entropy of the model's output) averaged over the batch. ``hidden`` maps each
    direction's name to its T norms, by time position. ``matches_rnn`` checks the unrolled
    computation against the model's fused one.
    """
    model.eval()
    with torch.no_grad():
        fused, _ = model.run_rnn(model.read(images))
    x = model.read(images).detach().requires_grad_(True)  # (B, T, F)
    with torch.enable_grad():
        output, out, steps = _forward_with_states(model, x)
        loss = nn.functional.cross_entropy(out, labels)
        loss.backward()
    names = ["forward", "backward"] if len(steps) == 2 else ["forward"]
    return {
        "steps": int(x.shape[1]),
        "images": int(x.shape[0]),
        "loss": float(loss.detach()),
        "input": x.grad.norm(dim=2).mean(dim=0).tolist(),  # (T,)
        "hidden": {
            name: [float(h.grad.norm(dim=1).mean()) for h in hs] for name, hs in zip(names, steps)
        },
        "matches_rnn": bool(torch.allclose(output.detach(), fused, atol=1e-5)),
        "readout": model.config.readout,
    }


def _ratio_text(name: str, norms: list[float]) -> str:
    """First and last step, and the smallest over the largest (0: below float32's range)."""
    low, high = min(norms), max(norms)
    return (
        f"{name:<28} step 0: {norms[0]:.2e}   step {len(norms) - 1}: {norms[-1]:.2e}   "
        f"smallest / largest = {low / high if high > 0 else 0.0:.2g}"
    )


def format_gradients(result: dict[str, Any]) -> str:
    """The figures as text: first and last step, their ratio, the range."""
    lines = [
        f"gradient of the loss (mean over {result['images']} images, loss "
        f"{result['loss']:.4f}) with respect to each of the {result['steps']} time steps:",
        _ratio_text("|dL/dx_t| (input step t)", result["input"]),
    ]
    for name, norms in result["hidden"].items():
        which = f"{name} state" if len(result["hidden"]) == 2 else "hidden state"
        lines.append(_ratio_text(f"|dL/dh_t| ({which})", norms))
    readout = result.get("readout", "final")
    if readout == "mean":
        where = (
            "The readout averages the states of every step, so each step's state is read "
            "directly;\nthe curves need not peak at one end. "
        )
    elif len(result["hidden"]) == 2 and readout == "last":
        where = (
            "The article's readout takes both directions at the last step: the forward state "
            "there has read\nevery step, the backward one only that step, so the backward "
            "states before it feed nothing\nthe readout takes (gradient exactly 0, not an "
            "underflow). Elsewhere the gradient shrinks (vanishes)\nor grows (explodes) with "
            "every step away from the readout;\n"
        )
    elif len(result["hidden"]) == 2:
        where = (
            "Each direction's gradient is largest where the readout takes its state (forward: "
            "the last step;\nbackward: step 0) and shrinks (vanishes) or grows (explodes) with "
            "every step away from it;\n"
        )
    else:
        where = (
            "The gradient is largest at the last step, where the readout takes the state, and "
            "shrinks (vanishes)\nor grows (explodes) with every step back from it; "
        )
    lines.append(
        where + "a ratio far below 1 means the far steps barely change what the model learns "
        "(0: below float32's range)."
    )
    if not result["matches_rnn"]:
        lines.append("warning: the step-by-step run disagrees with the model's own (above 1e-5)")
    return "\n".join(lines)


def gradient_picture(result: dict[str, Any], out_path: str | os.PathLike, title: str) -> Path:
    """Two log-scale panels over time: |dL/dx_t| and each direction's |dL/dh_t|."""
    from .figures import pyplot, save_figure

    plt = pyplot()
    fig, (ax_x, ax_h) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    t = range(result["steps"])
    ax_x.semilogy(t, result["input"], color="tab:blue")
    ax_x.set_ylabel("|dL/dx_t|")
    ax_x.set_title("gradient reaching each input step", fontsize=10)
    one = len(result["hidden"]) == 1
    for name, norms in result["hidden"].items():
        ax_h.semilogy(t, norms, label="its one direction" if one else f"{name} direction")
    ax_h.set_ylabel("|dL/dh_t|")
    ax_h.set_xlabel("time step t")
    ax_h.set_title(
        "gradient reaching each hidden state (through every step its direction reads after it)",
        fontsize=10,
    )
    ax_h.legend(fontsize=9)
    for ax, norms in ((ax_x, [result["input"]]), (ax_h, list(result["hidden"].values()))):
        ax.grid(True, which="both", alpha=0.3)
        zeros = sum(v == 0.0 for n in norms for v in n)
        if zeros:  # a log axis cannot draw them: say so rather than leave a silent gap
            ax.text(
                0.01,
                0.05,
                f"{zeros} step(s) at 0: below float32's smallest number, or unread by the readout",
                transform=ax.transAxes,
                fontsize=8,
                color="tab:red",
            )
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out_path)
