"""Keep a node's own processes off the cores its CPU engines compute on.

A vLLM CPU engine is pinned to its cores (`VLLM_CPU_OMP_THREADS_BIND`); everything else on the node (the
Serve proxy, the ingress replicas and their guard threads, Ray's own daemons, an unlearning job) is not,
and the scheduler puts it on the engines' cores too, where each token it handles takes time from the
engine (measured on 2 cores: the engine got 8.0 s of CPU in 10 s behind the gateway against 9.5 s alone,
and the gateway kept 80% of direct tokens/s). A local `lethe serve` therefore starts Ray on the cores no
engine uses, when there are any; each LLM replica lets its engine onto its cores and keeps its own
threads off them.
"""

from __future__ import annotations

import logging
import os

from gateway.config import LetheConfig

log = logging.getLogger(__name__)


def bound_cores(bind: str) -> list[str]:
    """The cores a `VLLM_CPU_OMP_THREADS_BIND` value names ("0", "0,1", "0-3", "0-3|4-7"); a value
    such as "auto" names none (unknown: the controller treats the replica as sharing cores)."""
    cores: list[str] = []
    for part in bind.replace("|", ",").split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return []
        cores.extend(str(c) for c in range(int(first), int(last or first) + 1))
    return cores


def engine_span(config: LetheConfig, rank: int, cpus: int) -> list[str]:
    """The cores the CPU engine of LLM replica `rank` binds to on a node of `cpus` cores."""
    threads = config.engine.cpu_threads
    first = (rank * threads) % cpus
    return [str((first + i) % cpus) for i in range(threads)]


def node_engine_cores(config: LetheConfig, cpus: int, bind: str | None) -> set[int] | None:
    """Every core the CPU engines of a single-node server use (None: unknown, e.g. "auto")."""
    if bind:
        cores = bound_cores(bind)
        return {int(c) for c in cores} if cores else None
    return {int(c) for rank in range(config.server.llm_replicas) for c in engine_span(config, rank, cpus)}


def set_process_affinity(cores: set[int]) -> None:
    """Every thread of this process (and so every process and thread it starts from now on) on `cores`."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except (ProcessLookupError, PermissionError, OSError):
            continue  # a thread that ended meanwhile, or one the system keeps where it is


def keep_off_engine_cores(config: LetheConfig) -> set[int] | None:
    """In `lethe serve` before it starts a local Ray: put this process, and so everything Ray starts, on
    the cores no CPU engine of this node uses. Returns those cores, or None when nothing was changed (GPU
    engines, a joined cluster, engines on every core, or no affinity support)."""
    if config.server.llm_num_gpus or config.server.ray_address is not None or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    engines = node_engine_cores(config, os.cpu_count() or 1, os.environ.get("VLLM_CPU_OMP_THREADS_BIND"))
    if not engines:
        return None
    spare = allowed - engines
    if not spare or spare == allowed:
        return None
    set_process_affinity(spare)
    log.info("serving processes run on cores %s; the CPU engines on %s", sorted(spare), sorted(engines & allowed))
    return spare
