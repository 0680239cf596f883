"""Benchmark `regdeploy up` on the local engine: first deployment (images present) and idempotent re-run,
for a registry alone and for a registry with the webhook relay (two units), side by side in one run.

Prints the median of N runs of each, as whole CLI processes (interpreter start and imports
included: that is what a user waits for). Uses its own container names, ports and temp dirs, and
removes them at the end. The relay's target is port 9 on loopback: nothing is delivered anywhere.

    .venv/bin/python bench/up.py [--runs 5] [--image regdeploy-test/registry:2.8.2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from common import REGDEPLOY, cli_env, local_inventory, remove_local, timed

RELAY = {"targets": [{"name": "ci", "type": "generic", "url": "http://127.0.0.1:9/hook"}]}


def measure(image: str, runs: int, **registry: Any) -> tuple[list[float], list[float]]:
    """(first up times, idempotent re-run times) of one configuration."""
    tmp = Path(tempfile.mkdtemp(prefix="regdeploy-bench-"))
    inventory, name = local_inventory(tmp, image, **registry)
    env = cli_env(tmp)
    up = [*REGDEPLOY, "up", "-i", str(inventory)]
    down = [*REGDEPLOY, "down", "--purge-data", "--yes", "-i", str(inventory)]
    first: list[float] = []
    rerun: list[float] = []
    try:
        # Warm-up: state (CA, password, bcrypt hash) and the sidecar image made once, as for a user.
        timed(up, env)
        timed(down, env)
        for _ in range(runs):
            first.append(timed(up, env))
            rerun.append(timed(up, env))
            timed(down, env)
        timed(up, env)
        rerun += [timed(up, env) for _ in range(runs)]
    finally:
        remove_local(inventory, name, env)
        shutil.rmtree(tmp, ignore_errors=True)
    return first, rerun


def line(label: str, values: list[float], target: str) -> str:
    return (f"  {label:<38} median {statistics.median(values):.3f} s  "
            f"(min {min(values):.3f}, max {max(values):.3f})  target {target}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", default="regdeploy-test/registry:2.8.2")
    args = parser.parse_args()

    plain = measure(args.image, args.runs)
    relay = measure(args.image, args.runs, relay=RELAY)
    print(f"regdeploy up, local engine, image {args.image} present, {args.runs} runs each")
    print(line("first up, registry alone:", plain[0], "<= 1.5 s"))
    print(line("idempotent re-run, registry alone:", plain[1], "<= 0.5 s"))
    print(line("first up, registry + relay:", relay[0], "-"))
    print(line("idempotent re-run, registry + relay:", relay[1], "<= 0.3 s"))


if __name__ == "__main__":
    main()
