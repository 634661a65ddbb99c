"""Export time per reading order and per exporter: what ``export.DYNAMO_ONNX_MAX_STEPS`` rests on.

    python benchmarks/bench_export.py            # default sizes; run it on an idle machine
    python benchmarks/bench_export.py --smoke    # every step with a tiny model, for correctness

For each order (rows: 28 steps; pixels of 16: 49; pixels of 4: 196; pixels of 1: 784) a default-
width bidirectional LSTM with random weights is exported by the TorchScript-based ONNX exporter
(``dynamo=False``), the torch.export-based one (``dynamo=True``), ``torch.export`` (.pt2) and
``torch.jit.trace``; each export's wall time is printed with the order's step count. Exporters
compile nothing across calls that would make a second export of another order faster, but the
first export of a process pays imports: a warm-up export of a small rows model runs first.
Prints one Markdown table; writes nothing but temp files it removes.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import warnings
from pathlib import Path

import torch

from seqmnist.config import ModelConfig
from seqmnist.model import SeqClassifier

ORDERS = {"rows": ("rows", 0), "pixels/16": ("pixels", 16), "pixels/4": ("pixels", 4)}
ORDERS |= {"pixels/1": ("pixels", 1)}
BATCH = torch.export.Dim("batch", max=65_536)


def onnx_classic(model: torch.nn.Module, path: Path) -> None:
    torch.onnx.export(
        model,
        (torch.zeros(2, 28, 28),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
    )


def onnx_dynamo(model: torch.nn.Module, path: Path) -> None:
    """What `seqmnist export --format onnx` runs for short orders (one call, not a copy of it)."""
    from seqmnist.export import _dynamo_onnx_export

    _dynamo_onnx_export(model, path, "logits")


def pt2(model: torch.nn.Module, path: Path) -> None:
    program = torch.export.export(
        model, (torch.zeros(2, 28, 28),), dynamic_shapes={"images": {0: BATCH}}
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    path.write_bytes(buffer.getvalue())


def torchscript(model: torch.nn.Module, path: Path) -> None:
    torch.jit.save(torch.jit.trace(model, torch.zeros(2, 28, 28)), str(path))


EXPORTERS = {
    "onnx dynamo=False": onnx_classic,
    "onnx dynamo=True": onnx_dynamo,
    "pt2": pt2,
    "torchscript": torchscript,
}


def time_export(export, model: torch.nn.Module, folder: Path) -> float:
    start = time.perf_counter()
    export(model, folder / "model.out")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, two orders")
    parser.add_argument("--hidden", type=int, default=64, help="units per direction (default: 64)")
    args = parser.parse_args()
    hidden = 4 if args.smoke else args.hidden
    orders = dict(list(ORDERS.items())[:2]) if args.smoke else ORDERS
    warnings.simplefilter("ignore")  # exporters' notes; the timings are what this prints
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, hidden {hidden}")
    print("| order | steps | " + " | ".join(EXPORTERS) + " |")
    print("| --- | ---: |" + " ---: |" * len(EXPORTERS))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        warm = SeqClassifier(ModelConfig(hidden=4)).eval()
        for export in EXPORTERS.values():
            time_export(export, warm, folder)
        for name, (order, k) in orders.items():
            config = ModelConfig(order=order, pixels_per_step=k, hidden=hidden)
            model = SeqClassifier(config).eval()
            cells = [f"{time_export(e, model, folder):.1f} s" for e in EXPORTERS.values()]
            print(f"| {name} | {config.steps} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
