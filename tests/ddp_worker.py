"""Run under torchrun by tests/test_distributed.py (not a test module itself).

    torchrun --standalone --nproc_per_node=2 tests/ddp_worker.py DATA_DIR OUT_DIR

Trains three times in one launch (torchrun start-up is the slow part), keeping one process group
for all three, and saves what the test compares:

- ``cli/run``: ``seqmnist train`` through ``seqmnist.cli.main`` (run from the folder ``cli/``, so
  stray files would show), with the flags in ``CLI_ARGS``;
- ``full/``: 3 epochs, 2 layers, dropout, augmentation; each rank's weights after its last
  training epoch in ``full_rank{R}.pt`` (after fit, rank 0's model holds the *best* checkpoint,
  so the weights are taken right after ``train_one_epoch``);
- ``resumed/``: the same config, interrupted (KeyboardInterrupt on every rank) at the start of
  epoch 2, then ``fit(..., resume=True)``; weights in ``resumed_rank{R}.pt``;
- ``ddp_rank{R}.txt``: how many epochs went through DistributedDataParallel, how many ran, and
  the epoch the interrupted run reported; ``interrupt_rank{R}.txt``: the interruption's message;
- ``teardown_rank{R}.txt``: the most DistributedDataParallel wrappers alive when a run reached
  the process group's destruction (must be 0: a live wrapper there can abort the process).

With ``kill`` as its first argument it instead runs one `seqmnist train` in which rank 1 kills
itself (SIGKILL) in epoch 2, for the survivor's one-line report.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for conftest.tiny_config

import seqmnist.runtime as runtime_mod  # noqa: E402
import seqmnist.train as train_mod  # noqa: E402
from conftest import tiny_config  # noqa: E402
from seqmnist.cli import main as cli_main  # noqa: E402
from seqmnist.errors import TrainingInterrupted  # noqa: E402

# Per-rank batch 25 on 2 ranks = a global batch of 50.
DROPOUT_RUN = dict(epochs=3, layers=2, dropout=0.3, seed=3, batch_size=25, augment_shift=2)
CLI_ARGS = [
    "--epochs",
    "2",
    "--hidden",
    "16",
    "--batch-size",
    "25",
    "--val-size",
    "100",
    "--threads",
    "1",
    "--augment-shift",
    "0",
    "--augment-rotate",
    "0",
    "--augment-scale",
    "0",
    "--printed-digits",
    "0",
    "--no-plots",
    "--log",
    "tensorboard",
]


def main() -> None:
    data_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    rank = int(os.environ["RANK"])

    # One process group for every run in this launch: fit's shutdown() becomes a no-op, which
    # counts the DDP wrappers still alive at that moment.
    alive_at_teardown = [0]

    def no_shutdown(info) -> None:
        gc.collect()
        alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
        alive_at_teardown.append(alive)

    runtime_mod.shutdown = no_shutdown

    (out / "cli").mkdir(exist_ok=True)
    os.chdir(out / "cli")
    code = cli_main(
        [
            "train",
            "--data-dir",
            str(data_dir),
            "--no-download",
            "--out",
            str(out / "cli" / "run"),
            *CLI_ARGS,
        ]
    )
    if code != 0:
        raise SystemExit(f"rank {rank}: seqmnist train exited with {code}")
    sys.stdout.flush()
    os.chdir(out)
    dist.barrier()

    real_epoch = train_mod.train_one_epoch
    calls: list[int] = []
    wrapped: list[bool] = []
    last_state: dict[str, torch.Tensor] = {}
    interrupt_at = [0]

    def interrupt(
        epoch: int, done: int
    ) -> None:  # fit's on_batch hook: Ctrl-C in epoch N's first step
        if epoch == interrupt_at[0]:
            raise KeyboardInterrupt

    def watched_epoch(trainable, *args, **kwargs):  # a spy: which module trains, with what weights
        calls.append(1)
        result = real_epoch(trainable, *args, **kwargs)
        wrapped.append(isinstance(trainable, DistributedDataParallel))
        module = getattr(trainable, "module", trainable)
        last_state.clear()
        last_state.update({k: v.detach().clone() for k, v in module.state_dict().items()})
        return result

    train_mod.train_one_epoch = watched_epoch

    def run(name: str, **kwargs) -> None:
        train_mod.fit(
            tiny_config(**DROPOUT_RUN),
            out / name,
            data_dir=data_dir,
            download=False,
            quiet=True,
            on_batch=interrupt,
            **kwargs,
        )
        torch.save(last_state, out / f"{name}_rank{rank}.pt")
        dist.barrier()  # rank 0 may still be writing files the next fit reads

    run("full")

    calls.clear()
    interrupt_at[0] = 2
    interrupted_epoch = None
    try:
        run("resumed")
    except TrainingInterrupted as exc:
        interrupted_epoch = exc.epoch
        (out / f"interrupt_rank{rank}.txt").write_text(str(exc))
    dist.barrier()
    interrupt_at[0] = 0
    run("resumed", resume=True)

    # epochs trained through DDP, epochs trained in all (3 + 1 + 2), epoch the interruption reported
    (out / f"ddp_rank{rank}.txt").write_text(f"{sum(wrapped)} {len(wrapped)} {interrupted_epoch}\n")
    (out / f"teardown_rank{rank}.txt").write_text(f"{max(alive_at_teardown)}\n")
    print(f"rank {rank}: DDP wrappers alive at each teardown: {alive_at_teardown[1:]}")
    dist.destroy_process_group()


def kill_rank_1_in_epoch_2() -> None:
    data_dir, out = Path(sys.argv[2]), Path(sys.argv[3])

    def die(epoch: int, done: int) -> None:
        if epoch == 2 and os.environ["RANK"] == "1":
            os.kill(os.getpid(), signal.SIGKILL)

    real_fit = train_mod.fit
    train_mod.fit = lambda *args, **kwargs: real_fit(*args, **kwargs, on_batch=die)
    args = ["train", "--data-dir", str(data_dir), "--no-download", "--out", str(out / "run")]
    raise SystemExit(cli_main([*args, *CLI_ARGS[:1], "3", *CLI_ARGS[2:]]))


if __name__ == "__main__":
    if sys.argv[1] == "kill":
        kill_rank_1_in_epoch_2()
    else:
        main()
