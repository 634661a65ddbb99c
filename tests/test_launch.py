"""What the launcher gives a process (launch.py, runtime.py): torchrun's variables only under
torchrun, threads from the CPUs the process may use, and the one-line stops of a training run
(a lost process, out of memory) tried without starting other processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import cli_train, tiny_config
from seqmnist.errors import ProcessLost
from seqmnist.failures import one_line_failures
from seqmnist.launch import cgroup_cpu_quota, local_processes, torchrun_rank, usable_cpus
from seqmnist.run import RunDir
from seqmnist.runtime import DistInfo, Runtime, configure_threads, init_distributed, lost_ranks

TORCHRUN_ENV = ("TORCHELASTIC_RUN_ID", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@pytest.fixture()
def plain_env(monkeypatch):
    """No torchrun variables at all."""
    for key in (*TORCHRUN_ENV, "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.fixture()
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


# --- torchrun's variables ---------------------------------------------------------------------


def test_stray_torchrun_variables_are_ignored_with_one_warning(plain_env):
    for key, value in dict(
        RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="1"
    ).items():
        plain_env.setenv(key, value)
    with pytest.warns(UserWarning, match="ignoring RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT"):
        info = init_distributed("cpu")
    assert info == DistInfo() and not torch.distributed.is_initialized()
    assert torchrun_rank() == 0 and local_processes() == 1


def test_torchrun_variables_are_believed_with_the_agents_marker(plain_env):
    for key, value in dict(
        TORCHELASTIC_RUN_ID="x", RANK="3", WORLD_SIZE="4", LOCAL_WORLD_SIZE="2"
    ).items():
        plain_env.setenv(key, value)
    assert torchrun_rank() == 3 and local_processes() == 2


def test_a_plain_train_with_stray_variables_trains_alone(
    plain_env, synthetic_data_dir, tmp_path, capsys, keep_threads
):
    # Before: RANK/WORLD_SIZE/MASTER_* made it wait (30 minutes) for a partner that never came.
    for key, value in dict(RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1").items():
        plain_env.setenv(key, value)
    plain_env.setenv("MASTER_PORT", "9")  # nothing listens there
    assert cli_train(synthetic_data_dir, tmp_path / "run", "--no-plots", epochs=1) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "seqmnist: warning: ignoring RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the environment"
    )
    assert (tmp_path / "run" / "summary.json").is_file()


# --- CPUs and threads -------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_smallest_up_to_the_root(tmp_path):
    root = tmp_path / "cgroup"
    write(tmp_path / "self", "0::/job/step\n")
    write(root / "cpu.max", "max 100000\n")
    write(root / "job" / "cpu.max", "150000 100000\n")  # the parent's limit binds the child
    write(root / "job" / "step" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(root, tmp_path / "self") == 1.5
    write(root / "job" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(root, tmp_path / "self") is None


def test_cgroup_v1_quota(tmp_path):
    root = tmp_path / "cgroup"
    write(tmp_path / "self", "5:memory:/x\n4:cpu,cpuacct:/docker/abc\n")
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "300000\n")
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(root, tmp_path / "self") == 3.0
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_quota(root, tmp_path / "self") is None


def test_usable_cpus_takes_the_affinity_and_the_quota(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    monkeypatch.setattr("seqmnist.launch.cgroup_cpu_quota", lambda root: 2.5)
    assert usable_cpus() == 3  # a quota of 2.5 CPUs keeps 3 threads busy
    monkeypatch.setattr("seqmnist.launch.cgroup_cpu_quota", lambda root: None)
    assert usable_cpus() == 6


def test_default_threads_follow_the_allowed_cpus_divided_among_local_processes(
    plain_env, keep_threads
):
    plain_env.setattr("seqmnist.runtime.usable_cpus", lambda: 4)
    assert configure_threads(0) == 4
    for key, value in dict(TORCHELASTIC_RUN_ID="x", RANK="1", WORLD_SIZE="2").items():
        plain_env.setenv(key, value)
    plain_env.setenv("LOCAL_WORLD_SIZE", "2")
    assert configure_threads(0) == 2 and torch.get_num_threads() == 2


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux affinity masks")
def test_one_allowed_core_means_one_thread():
    # As `taskset -c 0 seqmnist train` (a container's or a batch job's CPU set): before, the
    # default counted the machine's cores.
    code = textwrap.dedent(
        """
        import os
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        from seqmnist.runtime import configure_threads
        print(configure_threads(0))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "1"


def test_serve_sizes_its_workers_with_the_same_function():
    import seqmnist.launch
    import seqmnist.serve.app as app

    assert app.usable_cpus is seqmnist.launch.usable_cpus


# --- one-line stops -----------------------------------------------------------------------------


def fake_runtime(rank: int, peers) -> Runtime:
    return Runtime(torch.device("cpu"), DistInfo(rank, rank, len(peers), tuple(peers)), 1)


def exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lost_ranks_are_the_exited_processes_on_this_host():
    import socket

    host = socket.gethostname()
    info = DistInfo(0, 0, 3, ((host, os.getpid()), (host, exited_pid()), ("elsewhere", 1)))
    assert lost_ranks(info) == [1]  # rank 2 is on another machine: not seen from here


@pytest.fixture()
def keep_sigterm_handler():
    """A lost process leaves SIGTERM ignored (the process is ending): undo that here."""
    import signal

    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("rank", [0, 1])
def test_a_failed_collective_is_one_line_naming_the_lost_rank(tmp_path, rank, keep_sigterm_handler):
    import socket

    host = socket.gethostname()
    dead = exited_pid()
    peers = [(host, os.getpid()), (host, dead)] if rank == 0 else [(host, dead), (host, 1)]
    rt = fake_runtime(rank, peers)
    lost = 1 - rank
    run = RunDir(tmp_path / "run")
    with pytest.raises(ProcessLost) as caught, one_line_failures(run, rt, None):
        raise RuntimeError("[gloo/transport/tcp/pair.cc:534] Read error: Connection reset by peer")
    message = str(caught.value)
    assert f"rank {lost} (pid {dead}) of this 2-process run stopped" in message
    assert message.endswith(
        f"Resume with: torchrun --standalone --nproc_per_node=2 -m seqmnist train --resume "
        f"{tmp_path / 'run'}"
    )
    assert caught.value.reporter  # the only survivor says it
    assert "\n" not in message


def test_out_of_memory_is_one_line_naming_the_flags(
    synthetic_data_dir, tmp_path, capsys, monkeypatch, keep_threads
):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr("seqmnist.train.train_one_epoch", no_memory)
    run = tmp_path / "run"
    assert cli_train(synthetic_data_dir, run, "--no-plots", epochs=1) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seqmnist: error: out of CPU memory during epoch 1")
    assert "--batch-size 50" in err[0] and "smaller --batch-size or --hidden" in err[0]
    # The folder holds only config.json and the epoch-0 checkpoint: a new start replaces it.
    monkeypatch.undo()
    assert cli_train(synthetic_data_dir, run, "--no-plots", "--batch-size", "25", epochs=1) == 0
    assert not any("already holds a run" in line for line in capsys.readouterr().err.splitlines())
    assert (run / "summary.json").is_file()


def test_an_unfinished_run_is_replaced_saying_so(synthetic_data_dir, tmp_path, capsys):
    from seqmnist.config import preset_config

    run = RunDir(tmp_path / "run")
    run.create(preset_config("default"), overwrite=False)
    run.last_checkpoint.write_bytes(b"epoch 0")
    assert run.unfinished() and run.refuse_to_replace(overwrite=False) is True
    from seqmnist.cli import main

    code = main(
        ["train", "--data-dir", str(synthetic_data_dir), "--no-download", "--out", str(run.path)]
        + ["--epochs", "1", "--hidden", "8", "--batch-size", "50", "--val-size", "100"]
        + ["--threads", "1", "--no-plots"]
    )
    assert code == 0
    assert f"replacing {run.path}: its first epoch never finished" in capsys.readouterr().out


def test_a_finished_epoch_is_still_protected(tmp_path):
    from seqmnist.config import preset_config
    from seqmnist.errors import SeqMnistError

    run = RunDir(tmp_path / "run")
    run.create(preset_config("default"), overwrite=False)
    run.append_metrics({"epoch": 1})
    assert not run.unfinished()
    with pytest.raises(SeqMnistError, match="already holds a run"):
        run.refuse_to_replace(overwrite=False)


def test_out_of_memory_kinds():
    from seqmnist.failures import is_out_of_memory

    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory"
        )
    )
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


# --- reproducibility, stated exactly ------------------------------------------------------------


def test_a_seed_fixes_the_run_bit_for_bit_at_the_same_thread_count(
    synthetic_data_dir, tmp_path, capsys, keep_threads
):
    from seqmnist.checkpoint import load_checkpoint
    from seqmnist.cli import main

    for name in ("a", "b"):
        assert cli_train(synthetic_data_dir, tmp_path / name, "--no-plots", epochs=1) == 0
    a, b = (load_checkpoint(tmp_path / n / "checkpoint_last.pt")["model_state"] for n in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    # what the promise depends on is recorded with the result
    assert (summary["threads"], summary["device_type"], summary["world_size"]) == (1, "cpu", 1)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "a")]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == (
        "reproduce    seed=0 gives this result bit for bit on the CPU with 1 threads and "
        "1 process(es); other --threads, another process count or device type give other last "
        "digits"
    )


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc: Linux")
def test_a_real_out_of_memory_is_one_line(synthetic_data_dir, tmp_path):
    """A real allocator failure: the process may map only 400 MB more than PyTorch itself, and a
    batch of 600 through 2048 units needs more (its gate activations alone are ~0.55 GB)."""
    code = textwrap.dedent(
        f"""
        import resource, sys
        import seqmnist.train
        from seqmnist.cli import main
        size_kb = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0])
        limit = size_kb * 1024 + 400 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        sys.exit(main(["train", "--data-dir", {str(synthetic_data_dir)!r}, "--no-download",
                       "--out", {str(tmp_path / "run")!r}, "--epochs", "1", "--hidden", "2048",
                       "--batch-size", "600", "--val-size", "0", "--threads", "1", "--no-plots"]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seqmnist: error: out of CPU memory during"), err
    assert "--batch-size 600 per process, --hidden 2048" in err[0]


def test_the_process_group_gets_the_stated_timeout(plain_env):
    from seqmnist import runtime

    calls = []
    plain_env.setattr(runtime.dist, "init_process_group", lambda **kw: calls.append(kw))
    for key, value in dict(TORCHELASTIC_RUN_ID="x", RANK="0", WORLD_SIZE="2").items():
        plain_env.setenv(key, value)
    info = init_distributed("cpu")
    assert info.world_size == 2 and info.enabled
    assert calls == [{"backend": "gloo", "timeout": runtime.COLLECTIVE_TIMEOUT}]
    assert runtime.COLLECTIVE_TIMEOUT.total_seconds() == 300  # the README's "5 minutes"


def test_a_run_in_its_first_epoch_in_another_process_is_not_replaced(tmp_path):
    """config.json and the epoch-0 checkpoint are also what a run still in its first epoch
    holds: while its trainer holds the claim, a new start is refused, not let in to replace it
    (both would write into one folder: one config, two runs' rows in metrics.csv)."""
    from seqmnist.config import preset_config
    from seqmnist.errors import SeqMnistError

    run = RunDir(tmp_path / "run")
    run.create(preset_config("default"), overwrite=False)
    run.last_checkpoint.write_bytes(b"epoch 0")
    trainer = RunDir(run.path)  # a lock of its own, as another process's would be
    trainer.claim()
    assert RunDir(run.path).in_use() and not RunDir(run.path).unfinished()
    with pytest.raises(SeqMnistError, match="being trained by another seqmnist process now"):
        RunDir(run.path).refuse_to_replace(overwrite=False)
    assert RunDir(run.path).refuse_to_replace(overwrite=True) is False  # asked for explicitly
    trainer.release()  # the trainer ended (or was killed: the kernel drops its lock)
    assert RunDir(run.path).refuse_to_replace(overwrite=False) is True


def test_training_holds_its_claim_until_it_ends(synthetic_data_dir, tmp_path):
    from seqmnist.train import fit

    seen = []
    run_dir = tmp_path / "run"
    fit(
        tiny_config(epochs=1),
        run_dir,
        data_dir=synthetic_data_dir,
        download=False,
        quiet=True,
        on_batch=lambda _epoch, _done: seen.append(RunDir(run_dir).in_use()),
    )
    assert seen and all(seen)
    assert not RunDir(run_dir).in_use()
