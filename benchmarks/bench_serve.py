"""Load test of `seqmnist serve`: many concurrent clients posting drawn digits to /api/predict.

Starts the real server (`python -m seqmnist serve MODEL --port 0`, uvicorn, one process) on
127.0.0.1, then sends --requests requests from --concurrency concurrent clients, each a real MNIST
test digit scaled up to a 280x280 PNG and sent as the page sends it (JSON with a data: URL).
Reports requests/s and p50 / p95 / p99 latency, checks that no request failed and that the
answers are right as often as the model is, writes benchmarks/results/serve.json and the serve
section of benchmarks/README.md, and prints a Markdown table naming the machine.

The clients run in this process, on the same cores as the server: on a small machine the figures
are a lower bound for the server alone. Only loopback addresses are used.

    .venv/bin/python benchmarks/bench_serve.py runs/default
    .venv/bin/python benchmarks/bench_serve.py runs/default --requests 500 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, machine, update_readme_section  # noqa: E402
from seqmnist.data import load_mnist  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CANVAS = 280  # the page's canvas is 280x280


def digit_payloads(data_dir: str | None, count: int) -> list[tuple[bytes, int]]:
    """(JSON body, true label) for ``count`` MNIST test digits.

    Each is drawn 280x280 like the page's canvas.
    """
    split = load_mnist(data_dir, train=False, download=False)
    payloads = []
    for image, label in zip(split.images[:count].numpy(), split.labels[:count].tolist()):
        big = Image.fromarray(image).resize((CANVAS, CANVAS), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        big.save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        payloads.append((json.dumps({"image": url, "top_k": 3}).encode(), label))
    return payloads


def start_server(model: str, log_path: Path, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """`seqmnist serve MODEL --host 127.0.0.1 --port 0`; returns the process and its base URL."""
    command = [
        sys.executable,
        "-m",
        "seqmnist",
        "serve",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log_path.open("wb"), cwd=REPO
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if select.select([process.stdout], [], [], 0.5)[0]:
            match = re.search(rb"on (http://127\.0\.0\.1:\d+)/", process.stdout.readline())
            if match:
                # uvicorn's access log goes to stdout: keep draining it, or the pipe fills up and
                # the server blocks on its next log line
                threading.Thread(
                    target=shutil.copyfileobj,
                    args=(process.stdout, log_path.open("ab")),
                    daemon=True,
                ).start()
                return process, match.group(1).decode()
    process.kill()
    raise SystemExit(f"the server did not start; its log:\n{log_path.read_text()[-3000:]}")


async def load_test(
    base_url: str,
    payloads: list[tuple[bytes, int]],
    requests: int,
    concurrency: int,
    time_limit: float,
) -> dict[str, object]:
    """Send ``requests`` POSTs from ``concurrency`` clients; latencies, errors and answers."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    correct = 0
    next_index = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal correct, next_index
        while next_index < requests:
            body, label = payloads[next_index % len(payloads)]
            next_index += 1
            start = time.perf_counter()
            try:
                response = await http.post(
                    "/api/predict", content=body, headers={"content-type": "application/json"}
                )
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            else:
                correct += response.json()["label"] == label

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as http:
        for body, _ in payloads[:20]:  # warm-up: first requests pay for lazy initialisation
            (
                await http.post(
                    "/api/predict", content=body, headers={"content-type": "application/json"}
                )
            ).raise_for_status()
        start = time.perf_counter()
        try:
            await asyncio.wait_for(
                asyncio.gather(*(client(http) for _ in range(concurrency))), time_limit
            )
        except asyncio.TimeoutError:
            errors.append(
                f"time limit of {time_limit:.0f} s reached after {len(latencies)} responses"
            )
        elapsed = time.perf_counter() - start
    return {"latencies": latencies, "errors": errors, "correct": correct, "seconds": elapsed}


def percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "model",
        nargs="?",
        default="runs/default",
        help="run directory or checkpoint to serve (default: runs/default)",
    )
    parser.add_argument("--requests", type=int, default=2000, help="timed requests (default: 2000)")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="concurrent clients (default: 32)"
    )
    parser.add_argument(
        "--time-limit", type=float, default=300, help="seconds before giving up (default: 300)"
    )
    parser.add_argument(
        "--data-dir", help="folder holding MNIST/raw/ (default: $SEQMNIST_DATA, else ./data)"
    )
    parser.add_argument(
        "--no-readme",
        action="store_true",
        help="do not update benchmarks/README.md (default: update)",
    )
    args = parser.parse_args()
    if not Path(args.model).exists():
        raise SystemExit(
            f"no model at {args.model}: train one first (seqmnist train --out {args.model})"
        )
    if not 1 <= args.concurrency <= 256 or not 1 <= args.requests <= 100_000:
        raise SystemExit("--concurrency must be 1-256 and --requests 1-100000")

    payloads = digit_payloads(args.data_dir, 200)
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(args.model, Path(tmp) / "server.log")
        try:
            run = asyncio.run(
                load_test(url, payloads, args.requests, args.concurrency, args.time_limit)
            )
        finally:
            process.terminate()
            process.wait(timeout=30)

    latencies, errors = run["latencies"], run["errors"]
    answered = len(latencies)
    result = {
        "model": args.model,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "answered": answered,
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": round(run["seconds"], 3),
        "requests_per_s": round(answered / run["seconds"], 1),
        "latency_ms": {
            q: round(percentile_ms(latencies, p), 1)
            for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        },
        "accuracy": round(run["correct"] / answered, 4) if answered else None,
        "image": (
            f"{CANVAS}x{CANVAS} PNG of an MNIST test digit, JSON data: URL (as the page sends)"
        ),
        "machine": machine(),  # torch_threads: this client process's; the server uses 1 per request
        "server": (
            "seqmnist serve defaults: one uvicorn process, 1 PyTorch thread per prediction, "
            "one prediction per core"
        ),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "serve.json").write_text(json.dumps(result, indent=2) + "\n")

    m, lat = result["machine"], result["latency_ms"]
    table = (
        f"`seqmnist serve` load test on {m['cpu']} "
        f"({m['cores']} cores; clients on the same cores), "
        f"{args.requests:,} requests from {args.concurrency} concurrent clients, "
        f"{result['date']}:\n\n"
        "| requests/s | p50 ms | p95 ms | p99 ms | max ms | errors | answers correct |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        f"| {result['requests_per_s']} | {lat['p50']} | {lat['p95']} | {lat['p99']} | "
        f"{lat['max']} | "
        f"{len(errors)} | {100 * (result['accuracy'] or 0):.1f} % |\n"
    )
    print(table)
    if not args.no_readme:
        update_readme_section("serve", table)
    if errors or answered != args.requests:
        print(
            f"FAILED: {len(errors)} errors, {answered}/{args.requests} answered; "
            f"first: {errors[:3]}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
