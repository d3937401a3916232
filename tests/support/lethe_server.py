"""A real `lethe serve` process for end-to-end tests: start, wait for ready, stop, check cleanup."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psutil

# Ray's default worker ports (`--min-worker-port`/`--max-worker-port`): a server's port is never one of these.
_RAY_WORKER_PORTS = range(10002, 20000)


def _ephemeral_ports() -> range:
    """The kernel's range for the local end of outgoing connections (Linux; the usual default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port() -> int:
    """A port free now that no other process will take before the server binds it (tens of seconds later:
    Ray starts first). A port the kernel picks (bind to 0) comes from the ephemeral range, which every
    outgoing connection Ray's processes open meanwhile draws from too: CI once lost the Serve proxy's
    port that way. So: a random free port between Ray's worker ports and the ephemeral range."""
    ephemeral = _ephemeral_ports()
    candidates = list(range(_RAY_WORKER_PORTS.stop, ephemeral.start))
    random.shuffle(candidates)
    for port in candidates[:200]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # no gap to pick from on this machine
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Job gates that pass anything, for tests and benchmarks about the job path rather than its leakage:
# the leakage views are still measured, with margins no rate exceeds.
OPEN_GATES = {
    "forget_hit_rate_max": 1.0,
    "retain_hit_rate_min_ratio": 0.0,
    "perplexity_max_ratio": 1000.0,
    "view_margin": 1.0,
    "view_choice_margin": 1.0,
    "view_best_of_n_margin": 1.0,
}


class LetheServer:
    """`lethe serve` in its own session; every process it spawns carries LETHE_HOME=`home`."""

    def __init__(self, home: Path, env: dict[str, str], log_path: Path) -> None:
        self.home = home
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LETHE_HOME": str(home),
            "LETHE_PORT": str(self.port),
            "LETHE_METRICS_PORT": str(free_port()),
            "LETHE_PROBES_ENABLED": "false",  # probe runs only where a test asks for one
            # Tests check which replica answered (x-lethe-replica); chat clients do not see it by default.
            "LETHE_DIAGNOSTIC_HEADERS": "true",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        if "LETHE_MASTER_KEY" not in env:  # the unit tests' key (tests/conftest.py) is not the server's
            self.env.pop("LETHE_MASTER_KEY", None)
            self.env.pop("LETHE_MASTER_KEYS_PREVIOUS", None)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 300) -> LetheServer:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lethe serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"lethe serve not ready after {timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def processes(self) -> list[psutil.Process]:
        """Every live process started for this server (they inherit its LETHE_HOME)."""
        mine = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if proc.environ().get("LETHE_HOME") == str(self.home) and proc.status() != psutil.STATUS_ZOMBIE:
                    mine.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return mine

    def stop(self, timeout_s: float = 60) -> int | None:
        """SIGTERM, as an operator's Ctrl-C would; falls back to killing the whole tree."""
        if self.proc is None:
            return None
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(timeout_s)
        else:
            code = self.proc.returncode
        return code

    def kill_all(self) -> None:
        """kill -9 the whole process tree at once, as a crash would."""
        victims = self.processes()
        if self.proc is not None and self.proc.poll() is None:
            victims.append(psutil.Process(self.proc.pid))
        for proc in victims:
            with suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(victims, timeout=30)
        if self.proc is not None:
            self.proc.wait(30)

    def kill_leftovers(self) -> None:
        for proc in self.processes():
            with suppress(psutil.NoSuchProcess):
                proc.kill()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)


@contextmanager
def serving(home: Path, env: dict[str, str], log_path: Path | None = None) -> Iterator[LetheServer]:
    """A started `lethe serve`; on exit it is stopped and every process it left is killed, also when the
    start itself failed."""
    server = LetheServer(home, env, log_path or home / "serve.log")
    try:
        yield server.start()
    finally:
        server.stop()
        server.kill_leftovers()
