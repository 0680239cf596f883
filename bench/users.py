"""Benchmark `regdeploy users rotate` for 1 user among 100 on the local engine.

Deploys a registry with 100 users (bcrypt cost 10, the default), then times `users rotate user-042`
as a whole CLI process, median of N runs: only that user is re-hashed, the other 99 keep their
hashes, and the registry picks the new file up without a restart. Cleans up after itself.

    .venv/bin/python bench/users.py [--runs 5] [--image regdeploy-test/registry:2.8.2]
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
    users = {"users": [{"name": f"user-{i:03d}"} for i in range(100)]}
    inventory, name = local_inventory(tmp, args.image, auth=users)
    env = cli_env(tmp)
    inv = ["-i", str(inventory)]
    try:
        first = timed([*REGDEPLOY, "up", *inv], env)
        times = [timed([*REGDEPLOY, "users", "rotate", "user-042", "-o", str(tmp / "c.txt"), *inv], env)
                 for _ in range(args.runs)]  # fmt: skip
        rerun = timed([*REGDEPLOY, "up", *inv], env)
    finally:
        remove_local(inventory, name, env)
        shutil.rmtree(tmp, ignore_errors=True)
    print("regdeploy users rotate, 1 user among 100, bcrypt cost 10, local engine")
    print(f"  first up (100 users hashed):  {first:.3f} s")
    print(f"  users rotate user-042:        median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, {args.runs} runs)")  # fmt: skip
    print(f"  up after the rotations:       {rerun:.3f} s (no change expected)")


if __name__ == "__main__":
    main()
