"""What every benchmark shares: the CLI as a process, its environment, a timer, a free port, and a
one-host local inventory with its own container name, port and directories.

Figures are whole CLI processes, interpreter start and imports included: what a user waits for. An
installed package has compiled bytecode, but a development checkout run with PYTHONDONTWRITEBYTECODE
(as this project's sessions are) recompiles every module on every start, about 0.1 s. The benchmarks
measure the former: ``cli_env`` drops that variable and keeps the bytecode in the run's temp directory,
out of the source tree.
"""

from __future__ import annotations

import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REGDEPLOY = [sys.executable, "-m", "regdeploy"]


def cli_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, check=False)


def timed(args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one successful run; exits with its output when it fails."""
    return timed_cpu(args, env)[0]


def timed_cpu(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of the process, and the CPU seconds it used itself (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = run(args, env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def local_inventory(tmp: Path, image: str, **registry: Any) -> tuple[Path, str]:
    """A one-host inventory for this machine's engine: (its path, the container name)."""
    name = f"regdeploy-bench-{secrets.token_hex(3)}"
    settings = {
        "name": name,
        "image": image,
        "port": free_port(),
        "config_dir": str(tmp / "config"),
        "data_dir": str(tmp / "data"),
        "auth": {"users": [{"name": "bench"}]},
        **registry,
    }
    inventory = tmp / "hosts.yml"
    host = {"ansible_connection": "local", "registry": settings}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}))
    return inventory, name


def remove_local(inventory: Path, name: str, env: dict[str, str]) -> None:
    """`down --purge-data`, and the container even if that failed."""
    run([*REGDEPLOY, "down", "--purge-data", "--yes", "-i", str(inventory)], env)
    for leftover in (name, f"{name}-relay"):
        subprocess.run(["docker", "rm", "-f", "-v", leftover], capture_output=True, check=False)
    subprocess.run(["docker", "network", "rm", f"{name}-net"], capture_output=True, check=False)
