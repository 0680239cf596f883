"""Benchmark `regdeploy up` on the local engine: first deployment (image present) and idempotent re-run.

Prints the median of N runs of each, as whole CLI processes (interpreter start and imports
included: that is what a user waits for). Uses its own container name, port and temp dirs, and
removes them at the end.

    .venv/bin/python bench/up.py [--runs 5] [--image regdeploy-test/registry:2.8.2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REGDEPLOY = [sys.executable, "-m", "regdeploy"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", default="regdeploy-test/registry:2.8.2")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="regdeploy-bench-"))
    name = f"regdeploy-bench-{secrets.token_hex(3)}"
    inventory = tmp / "hosts.yml"
    registry = {
        "name": name,
        "image": args.image,
        "port": free_port(),
        "config_dir": str(tmp / "config"),
        "data_dir": str(tmp / "data"),
        "auth": {"users": [{"name": "bench"}]},
    }
    host = {"ansible_connection": "local", "registry": registry}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}))
    env = dict(os.environ)
    up = [*REGDEPLOY, "up", "-i", str(inventory)]
    down = [*REGDEPLOY, "down", "--purge-data", "--yes", "-i", str(inventory)]
    first: list[float] = []
    rerun: list[float] = []
    try:
        timed(up, env)  # warm-up: state (CA, password, bcrypt hash) created once, as for a real user
        timed(down, env)
        for _ in range(args.runs):
            first.append(timed(up, env))
            for _ in range(1):
                rerun.append(timed(up, env))
            timed(down, env)
        timed(up, env)
        rerun += [timed(up, env) for _ in range(args.runs)]
    finally:
        subprocess.run(down, env=env, capture_output=True)
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"regdeploy up, local engine, image {args.image} present, {args.runs} runs each")
    print(f"  first up (nothing deployed): median {statistics.median(first):.3f} s  "
          f"(min {min(first):.3f}, max {max(first):.3f})  target <= 1.5 s")  # fmt: skip
    print(f"  idempotent re-run:           median {statistics.median(rerun):.3f} s  "
          f"(min {min(rerun):.3f}, max {max(rerun):.3f})  target <= 0.5 s")  # fmt: skip


if __name__ == "__main__":
    main()
