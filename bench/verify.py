"""Benchmark `regdeploy verify` on the local engine: one registry deployed by `up`, verified N times.

Each run is a whole CLI process (interpreter start and imports included: what a user or a CI job waits
for). Prints the median wall time and each check's median `seconds` from the JSON. The registry is the
full setup: TLS, basic auth at the inventory's bcrypt cost, a debug port and a webhook endpoint (a
receiver in this process, reached from the container through the docker bridge gateway). Everything is
removed at the end.

    .venv/bin/python bench/verify.py [--runs 5] [--persistence] [--bcrypt-cost 10]
"""

from __future__ import annotations

import argparse
import http.server
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import REGDEPLOY, cli_env, free_port, local_inventory, remove_local, run, timed

BRIDGE_GATEWAY = "172.17.0.1"  # the docker host as the registry container sees it


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", default="regdeploy-test/registry:2.8.2")
    parser.add_argument("--persistence", action="store_true", help="also run the persistence check")
    parser.add_argument("--bcrypt-cost", type=int, default=10, help="the registry pays it on every request")
    args = parser.parse_args()

    receiver = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    tmp = Path(tempfile.mkdtemp(prefix="regdeploy-bench-"))
    hook = f"http://{BRIDGE_GATEWAY}:{receiver.server_address[1]}/hook"
    inventory, name = local_inventory(
        tmp,
        args.image,
        debug={"port": free_port()},
        tls={"mode": "selfsigned"},
        auth={"users": [{"name": "bench"}], "bcrypt_cost": args.bcrypt_cost},
        notifications={"endpoints": [{"name": "hook", "url": hook}]},
    )
    env = cli_env(tmp)
    verify = [*REGDEPLOY, "verify", "-i", str(inventory), "--json"]
    if args.persistence:
        verify.append("--persistence")
    walls: list[float] = []
    per_check: dict[str, list[float]] = {}
    try:
        timed([*REGDEPLOY, "up", "-i", str(inventory)], env)
        for _ in range(args.runs):
            started = time.perf_counter()
            proc = run(verify, env)
            walls.append(time.perf_counter() - started)
            if proc.returncode != 0:
                sys.exit(f"regdeploy verify failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
            for check in json.loads(proc.stdout)["hosts"]["localhost"]["checks"]:
                per_check.setdefault(check["name"], []).append(check["seconds"])
    finally:
        remove_local(inventory, name, env)
        shutil.rmtree(tmp, ignore_errors=True)
        receiver.shutdown()
        receiver.server_close()

    print(f"regdeploy verify, local engine, one registry (TLS, bcrypt cost {args.bcrypt_cost}, webhook), "
          f"{args.runs} runs")  # fmt: skip
    print(f"  whole CLI run: median {statistics.median(walls):.3f} s  "
          f"(min {min(walls):.3f}, max {max(walls):.3f})  target <= 2 s per host")  # fmt: skip
    print("  per check (median s; engine+api+catalog run side by side, so they overlap):")
    for check, seconds in per_check.items():
        print(f"    {check:<14} {statistics.median(seconds):6.3f}  (max {max(seconds):.3f})")


if __name__ == "__main__":
    main()
