"""A corpus of crafted and damaged checkpoints, run against every command that loads a model.

Each (checkpoint, command) pair must end with exit code 1 and one line on stderr that starts with
``seqmnist: error:``; print nothing on stdout; write nothing; execute nothing (the malicious
pickles would create a marker file); and stay within bounded time; the inflated config, which
claims a model of ~18 GB, is also run in a process of its own to bound its peak memory.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seqmnist.cli import main
from seqmnist.run import BEST_NAME, LAST_NAME

pytestmark = pytest.mark.usefixtures("torch_one_thread")

MARKER = "corpus-executed-code"


class Exploit:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __reduce__(self):
        return (os.system, (f"touch {self.folder / MARKER}",))


def _edited(good: dict, edit: Callable[[dict], None]) -> dict:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in good.items()}
    data["model_state"] = {k: v.clone() for k, v in good["model_state"].items()}
    edit(data)
    return data


def _set(path: str, value) -> Callable[[dict], None]:
    """An edit that sets data[a][b] (path "a.b") or data[a] (path "a")."""

    def edit(data: dict) -> None:
        *parents, last = path.split(".", 1) if "." in path else [path]
        target = data[parents[0]] if parents else data
        target[last] = value

    return edit


def _poison(value: float) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        data["model_state"]["head.bias"][3] = value

    return edit


def _drop_weight(data: dict) -> None:
    del data["model_state"]["head.weight"]


def _extra_weight(data: dict) -> None:
    data["model_state"]["head.extra"] = torch.zeros(3)


def _resize_weight(data: dict) -> None:
    data["model_state"]["head.weight"] = torch.zeros(10, 7)


# name -> the checkpoint as a dict to torch.save (edits of a good one)
EDITED = {
    "inflated config (hidden 4096 x 16 layers)": lambda d: d["model_config"].update(
        hidden=4096, layers=16
    ),
    "config claims other sizes than the weights": _set("model_config.hidden", 9),
    "weight with the wrong shape": _resize_weight,
    "weight missing": _drop_weight,
    "unknown weight": _extra_weight,
    "NaN weights": _poison(float("nan")),
    "infinite weights": _poison(float("inf")),
    "model config is a list": _set("model_config", [1, 2, 3]),
    "model config with a string size": _set("model_config.hidden", "many"),
    "model config with a negative size": _set("model_config.hidden", -5),
    "model config with an unknown order": _set("model_config.order", "spiral"),
    "model config with an unknown field": _set("model_config.wings", 2),
    "train config is a number": _set("train_config", 42),
    "train config is a list": _set("train_config", [1, 2]),
    "model state is a list": _set("model_state", [1, 2]),
    "a weight is a string": _set("model_state.head.bias", "abc"),
    "other format version": _set("version", 99),
    "other format name": _set("format", "someone-elses"),
    "unknown architecture": _set("arch", "Transformer"),
}


def write_corpus(folder: Path, good_path: Path) -> dict[str, Path]:
    """Every case as a file in ``folder``; returns name -> path."""
    good = torch.load(good_path, weights_only=True)
    files: dict[str, Path] = {}

    def put(name: str, write: Callable[[Path], None], suffix: str = ".pt") -> None:
        path = folder / f"case{len(files):02d}{suffix}"
        write(path)
        files[name] = path

    for name, edit in EDITED.items():
        data = _edited(good, edit)
        put(name, lambda p, data=data: torch.save(data, p))
    put("legacy whole-model pickle", lambda p: torch.save(_legacy_model(good), p))
    put("malicious pickle in a torch zip", lambda p: torch.save({"x": Exploit(folder)}, p))
    put("malicious plain pickle", lambda p: p.write_bytes(pickle.dumps(Exploit(folder))))
    put("truncated checkpoint", lambda p: p.write_bytes(good_path.read_bytes()[:5000]))
    put("empty file", lambda p: p.write_bytes(b""))
    put("random bytes", lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)))
    put("zip that is not a torch file", lambda p: p.write_bytes(_plain_zip()))
    put("torch file holding a list", lambda p: torch.save([1, 2, 3], p))
    put("a PNG renamed .pt", lambda p: p.write_bytes(_png_bytes()))
    program = _pt2_bytes(good)
    put("a torch.export program (.pt2)", lambda p: p.write_bytes(program), ".pt2")
    put("truncated .pt2", lambda p: p.write_bytes(program[: len(program) // 2]), ".pt2")
    put("crafted .pt2 with a malicious pickle", lambda p: _crafted_pt2(p, folder), ".pt2")
    return files


def _pt2_bytes(good: dict) -> bytes:
    """What `seqmnist export --format pt2` writes for the good checkpoint's model."""
    from seqmnist.checkpoint import model_from_checkpoint

    model = model_from_checkpoint(good).eval()
    batch = torch.export.Dim("batch", max=65_536)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's notes on nn.LSTM while it traces
        program = torch.export.export(
            model, (torch.zeros(2, 28, 28),), dynamic_shapes={"images": {0: batch}}
        )
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={"seqmnist.json": "{}"})
    return buffer.getvalue()


def _crafted_pt2(path: Path, folder: Path) -> None:
    """A .pt2 layout whose sample inputs and weights are pickles that would run a command."""
    payload = pickle.dumps(Exploit(folder))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model/archive_format", "pt2")
        z.writestr("model/data/sample_inputs/model.pt", payload)
        z.writestr("model/data/weights/weight_0", payload)
        z.writestr("model/extra/seqmnist.json", "{}")
        z.writestr("model/models/model.json", "{" * 10_000)


def _legacy_model(good: dict):
    from seqmnist.checkpoint import model_from_checkpoint

    return model_from_checkpoint(good)  # a whole nn.Module, pickled as an object


def _plain_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("notes.txt", "hello")
    return buffer.getvalue()


def _png_bytes() -> bytes:
    """A PNG of a "1": a white stroke on black, as MNIST draws it."""
    digit = np.zeros((28, 28), np.uint8)
    digit[5:23, 13:16] = 255
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, format="PNG")
    return buffer.getvalue()


CASES = [*EDITED, "legacy whole-model pickle", "malicious pickle in a torch zip"]
CASES += ["malicious plain pickle", "truncated checkpoint", "empty file", "random bytes"]
CASES += ["zip that is not a torch file", "torch file holding a list", "a PNG renamed .pt"]
CASES += ["a torch.export program (.pt2)", "truncated .pt2", "crafted .pt2 with a malicious pickle"]
COMMANDS = ["info", "evaluate", "predict", "serve", "export", "inspect", "plot", "explain"]


@pytest.fixture(scope="module")
def corpus(tiny_run, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    files = write_corpus(folder, tiny_run / BEST_NAME)
    assert list(files) == CASES
    return files


def _argv(command: str, checkpoint: Path, work: Path, data: Path, tiny_run: Path) -> list[str]:
    data_flags = ["--data-dir", str(data), "--no-download"]
    if command == "predict":
        image = work / "digit.png"
        image.write_bytes(_png_bytes())
        return ["predict", str(checkpoint), str(image), "--json"]
    if command == "serve":
        return ["serve", str(checkpoint), "--port", "0"]
    if command == "explain":
        image = work / "digit.png"
        image.write_bytes(_png_bytes())
        return ["explain", str(checkpoint), str(image), "--out", str(work / "explained")]
    if command == "export":
        return ["export", str(checkpoint), "--out", str(work / "model.onnx"), *data_flags]
    if command == "plot":  # takes a run directory: a finished run whose checkpoints are the case
        run = work / "run"
        shutil.copytree(tiny_run, run)
        for name in (BEST_NAME, LAST_NAME):
            shutil.copyfile(checkpoint, run / name)
        return ["plot", str(run), "--out", str(work / "plots"), *data_flags]
    if command == "evaluate":
        return ["evaluate", str(checkpoint), "--device", "cpu", *data_flags]
    return [command, str(checkpoint), *(data_flags if command == "inspect" else [])]


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES)
def test_every_command_refuses_every_crafted_checkpoint_in_one_line(
    case, command, corpus, tiny_run, synthetic_data_dir, tmp_path, capsys, monkeypatch
):
    import uvicorn

    def never(*args, **kwargs):
        raise AssertionError("the server started with a crafted checkpoint")

    monkeypatch.setattr(uvicorn.Server, "run", never)
    argv = _argv(command, corpus[case], tmp_path, synthetic_data_dir, tiny_run)
    before = _files(tmp_path)
    start = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 1, (code, out, err)
    assert err.startswith("seqmnist: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and out == "", out
    assert str(corpus[case].name) in err or BEST_NAME in err, err  # names the file at fault
    assert _files(tmp_path) == before  # nothing written, not even a partial picture
    assert not (corpus[case].parent / MARKER).exists()  # nothing executed
    assert seconds < 20


@pytest.mark.parametrize("command", COMMANDS)
def test_the_harness_accepts_the_good_checkpoint(
    command, tiny_run, synthetic_data_dir, tmp_path, capsys, monkeypatch
):
    """The control: the same command lines with the checkpoint the corpus was made from work
    (so the refusals above come from the checkpoints, not from the command lines)."""
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: started.append(True))
    argv = _argv(command, tiny_run / BEST_NAME, tmp_path, synthetic_data_dir, tiny_run)
    assert main(argv) == 0, capsys.readouterr().err
    assert started == ([True] if command == "serve" else [])


# The command's own peak resident memory in MiB: VmHWM of /proc/self/status belongs to this
# program's memory map (ru_maxrss would still count the pytest process it was forked from).
PEAK_MEMORY = """
import sys
from seqmnist.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) // 1024)
sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_the_inflated_config_is_refused_in_bounded_memory(
    command, corpus, tiny_run, synthetic_data_dir, tmp_path
):
    """Each command on the checkpoint that claims an ~18 GB model, in a process of its own so
    that its peak memory is its own: well under a gigabyte (importing PyTorch is most of it)."""
    case = corpus["inflated config (hidden 4096 x 16 layers)"]
    argv = _argv(command, case, tmp_path, synthetic_data_dir, tiny_run)
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr
    assert "does not match its own model config" in done.stderr
    assert int(done.stdout.strip()) < 1024, done.stdout


# --- --config files and --out onto .pt2 files -------------------------------------------------


def _config_corpus(folder: Path, good_config: Path) -> dict[str, Path]:
    """Damaged and crafted files for `seqmnist train --config`; name -> path."""
    good = good_config.read_bytes()
    rng = np.random.default_rng(0)
    record = json.loads(good)
    cases = {
        "truncated config.json": ("a.json", good[: len(good) // 2]),
        "empty .json": ("b.json", b""),
        "random bytes .toml": ("c.toml", rng.bytes(2048)),
        "random bytes .json": ("d.json", rng.bytes(2048)),
        "a PNG renamed .json": ("e.json", _png_bytes()),
        "a zip renamed .toml": ("f.toml", _plain_zip()),
        "JSON nested 100,000 deep": ("g.json", b"[" * 100_000 + b"]" * 100_000),
        "TOML nested tables 10,000 deep": ("h.toml", b"a = " + b"[" * 10_000 + b"]" * 10_000),
        "a 2 MB config": ("i.json", b'{"epochs": 3' + b" " * (2 << 20) + b"}"),
        "record claiming an 18 GB model": ("j.json", _json_with(record, hidden=4096 * 64)),
        "record with a list for model": ("k.json", json.dumps({**record, "model": [1]}).encode()),
        "record with NaN lr": ("l.json", json.dumps({**record, "lr": float("nan")}).encode()),
        "record of an unknown preset": ("m.json", json.dumps({**record, "preset": "x"}).encode()),
        "record with a huge integer": ("n.json", json.dumps({**record, "seed": 10**4000}).encode()),
        "a checkpoint renamed .json": ("o.json", b"PK\x03\x04" + rng.bytes(512)),
        "UTF-16 JSON": ("p.json", '{"epochs": 3}'.encode("utf-16")),
    }
    files = {}
    for name, (file_name, data) in cases.items():
        (folder / file_name).write_bytes(data)
        files[name] = folder / file_name
    return files


def _json_with(record: dict, **model: int) -> bytes:
    return json.dumps({**record, "model": {**record["model"], **model}}).encode()


CONFIG_CASES = [
    *("truncated config.json", "empty .json", "random bytes .toml"),
    *("random bytes .json", "a PNG renamed .json", "a zip renamed .toml"),
    *("JSON nested 100,000 deep", "TOML nested tables 10,000 deep", "a 2 MB config"),
    *("record claiming an 18 GB model", "record with a list for model", "record with NaN lr"),
    *("record of an unknown preset", "record with a huge integer", "a checkpoint renamed .json"),
    "UTF-16 JSON",
]


@pytest.fixture(scope="module")
def config_corpus(tiny_run, tmp_path_factory) -> dict[str, Path]:
    files = _config_corpus(tmp_path_factory.mktemp("configs"), tiny_run / "config.json")
    assert list(files) == CONFIG_CASES
    return files


@pytest.mark.parametrize("print_config", [False, True])
@pytest.mark.parametrize("case", CONFIG_CASES)
def test_train_refuses_every_damaged_or_crafted_config_file_in_one_line(
    case, print_config, config_corpus, synthetic_data_dir, tmp_path, capsys
):
    path = config_corpus[case]
    argv = ["train", "--config", str(path), "--out", str(tmp_path / "run")]
    argv += ["--data-dir", str(synthetic_data_dir), "--no-download"]
    start = time.perf_counter()
    code = main([*argv, *(["--print-config"] if print_config else [])])
    out, err = capsys.readouterr()
    assert code == 1 and out == "", (code, out, err)
    assert err.startswith(f"seqmnist: error: --config {path}") and err.count("\n") == 1, err
    assert len(err) < 400, err  # the line names the field, not the whole value
    assert list(tmp_path.iterdir()) == []  # no run directory
    assert time.perf_counter() - start < 20


def test_the_config_harness_accepts_the_good_config(tiny_run, synthetic_data_dir, capsys):
    argv = ["train", "--config", str(tiny_run / "config.json"), "--print-config"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((tiny_run / "config.json").read_text())


PT2_CASES = [
    "a torch.export program (.pt2)",
    "truncated .pt2",
    "crafted .pt2 with a malicious pickle",
]


@pytest.mark.parametrize("case", PT2_CASES[1:])
def test_export_refuses_to_write_over_a_foreign_pt2(
    case, corpus, tiny_run, synthetic_data_dir, tmp_path, capsys
):
    """--out onto a damaged or crafted .pt2: read by its zip names only, never loaded, refused."""
    target = tmp_path / "model.pt2"
    shutil.copyfile(corpus[case], target)
    before = target.read_bytes()
    argv = ["export", str(tiny_run), "--format", "pt2", "--out", str(target)]
    assert main([*argv, "--data-dir", str(synthetic_data_dir), "--no-download"]) == 1
    err = capsys.readouterr().err
    assert "not an earlier pt2 export" in err and err.count("\n") == 1, err
    assert target.read_bytes() == before and not (corpus[case].parent / MARKER).exists()
