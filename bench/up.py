"""Benchmark `regdeploy up` on the local engine: first deployment (image present) and idempotent re-run.

Prints the median of N runs of each, as whole CLI processes (interpreter start and imports
included: that is what a user waits for). Uses its own container name, port and temp dirs, and
removes them at the end.

    .venv/bin/python bench/up.py [--runs 5] [--image regdeploy-test/registry:2.8.2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from common import REGDEPLOY, cli_env, local_inventory, remove_local, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", default="regdeploy-test/registry:2.8.2")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="regdeploy-bench-"))
    inventory, name = local_inventory(tmp, args.image)
    env = cli_env(tmp)
    up = [*REGDEPLOY, "up", "-i", str(inventory)]
    down = [*REGDEPLOY, "down", "--purge-data", "--yes", "-i", str(inventory)]
    first: list[float] = []
    rerun: list[float] = []
    try:
        timed(up, env)  # warm-up: state (CA, password, bcrypt hash) created once, as for a real user
        timed(down, env)
        for _ in range(args.runs):
            first.append(timed(up, env))
            rerun.append(timed(up, env))
            timed(down, env)
        timed(up, env)
        rerun += [timed(up, env) for _ in range(args.runs)]
    finally:
        remove_local(inventory, name, env)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"regdeploy up, local engine, image {args.image} present, {args.runs} runs each")
    print(f"  first up (nothing deployed): median {statistics.median(first):.3f} s  "
          f"(min {min(first):.3f}, max {max(first):.3f})  target <= 1.5 s")  # fmt: skip
    print(f"  idempotent re-run:           median {statistics.median(rerun):.3f} s  "
          f"(min {min(rerun):.3f}, max {max(rerun):.3f})  target <= 0.5 s")  # fmt: skip


if __name__ == "__main__":
    main()
