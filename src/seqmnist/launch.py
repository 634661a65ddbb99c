"""What the launcher gave this process: its place among torchrun's processes and the CPUs it may
use. No torch import, so that every command (and the CLI's error printing) can ask cheaply.

torchrun's variables are believed only under torchrun. Its elastic agent sets RANK, WORLD_SIZE,
MASTER_ADDR and friends for each worker *together with* its own TORCHELASTIC_RUN_ID (and
GROUP_RANK, TORCHELASTIC_RESTART_COUNT, ...), which no shell or other tool sets by chance. A RANK
or WORLD_SIZE left in a shell (from an earlier experiment, a copied job script) without it would
otherwise make a plain ``seqmnist train`` wait for partners that never come, or hide its errors
as those of "rank 1"; such leftovers are ignored, with one warning from ``train``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# Set by torchrun's elastic agent for each worker it starts (torch/distributed/elastic/agent/
# server/local_elastic_agent.py), alongside RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE.
TORCHRUN_MARKER = "TORCHELASTIC_RUN_ID"
TORCHRUN_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def under_torchrun() -> bool:
    """Started by torchrun (its agent's marker, plus the RANK and WORLD_SIZE it always sets)."""
    return all(key in os.environ for key in (TORCHRUN_MARKER, "RANK", "WORLD_SIZE"))


def stray_torchrun_variables() -> list[str]:
    """torchrun's variables present although torchrun did not start this process."""
    if under_torchrun():
        return []
    return [key for key in TORCHRUN_VARIABLES if key in os.environ]


def _env_int(key: str, default: int) -> int:
    value = os.environ.get(key, "")
    return int(value) if value.isdigit() else default


def torchrun_rank() -> int:
    """This process's rank under torchrun; 0 otherwise (whatever a stray RANK says)."""
    return _env_int("RANK", 0) if under_torchrun() else 0


def local_processes() -> int:
    """Processes torchrun started on this machine (LOCAL_WORLD_SIZE); 1 otherwise."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", 1)) if under_torchrun() else 1


# --- CPUs -----------------------------------------------------------------------------------


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: its affinity mask (``taskset``, a container's or a batch
    job's CPU set), capped by its cgroup's CPU quota (``docker --cpus``, Kubernetes CPU limits,
    systemd's CPUQuota), whichever is smaller; not the machine's core count. A fractional
    quota counts as the next whole CPU (1.5 CPUs of time keep 2 threads busy part of the time)."""
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:  # macOS, Windows: no affinity masks to respect
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_cpu_quota(
    root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The CPU time this process's cgroup may use, in CPUs (``200000 100000`` -> 2.0); None
    when there is no limit or no cgroup file system. cgroup v2 (``cpu.max``) first, then v1
    (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``). A limit set on a parent cgroup binds too, so
    the smallest one from the process's own cgroup up to the root counts."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    quotas: list[float] = []
    for line in lines:  # "0::/user.slice/x.scope" (v2) or "4:cpu,cpuacct:/docker/abc" (v1)
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            quotas += _limits_upwards(root, path, _v2_quota)
        elif "cpu" in controllers.split(","):
            for mount in (root / "cpu,cpuacct", root / "cpu"):
                if mount.is_dir():
                    quotas += _limits_upwards(mount, path, _v1_quota)
                    break
    if not lines:  # no /proc (or not readable): the root of a v2 hierarchy, if any
        quotas += [q for q in [_v2_quota(root)] if q is not None]
    return min(quotas) if quotas else None


def _limits_upwards(mount: Path, path: str, read) -> list[float]:
    """``read(folder)`` for the cgroup folder of ``path`` and each parent up to the mount."""
    folder = mount / path.strip("/")
    limits = []
    while True:
        limit = read(folder)
        if limit is not None:
            limits.append(limit)
        if folder == mount or mount not in folder.parents:
            return limits
        folder = folder.parent


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None
