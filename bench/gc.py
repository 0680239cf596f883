"""Benchmark `regdeploy gc` on this machine's engine: the whole command for a registry holding N blobs of
which half are garbage (1,000 by default), next to the same registry with nothing to collect.

Every figure is a whole CLI process. The registry (bcrypt cost 4, so that filling it is quick) gets N/2
images of one small layer each (N blobs: layers and configs, plus N/2 manifests, which are blobs too);
the manifests of every other image are deleted, so 3N/4 blobs (their layers, configs and manifests)
are garbage. The output splits the time into the read-only switch, `garbage-collect`
itself and the switch back (from `gc`'s own progress lines, timestamped as they arrive).

    .venv/bin/python bench/gc.py [--blobs 1000] [--image regdeploy-test/registry:2.8.2]

Removes its container, network and directories at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REGDEPLOY, cli_env, local_inventory, remove_local, run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from deploytools import image_config, push_small_image

from regdeploy.verify.registry_api import RegistryClient

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def push(api: RegistryClient, i: int) -> str:
    layer = f"bench layer {i}\n".encode() * 64
    return push_small_image(api, "bench/gc", layer, f"t{i}", image_config(diff_ids=[str(i)]))


def timed_gc(inventory: Path, env: dict[str, str]) -> tuple[float, dict[str, float], dict[str, object]]:
    """Wall seconds of `gc --json`, the phases from its progress lines, and its report."""
    start = time.perf_counter()
    proc = subprocess.Popen([*REGDEPLOY, "gc", "--json", "-i", str(inventory)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    marks: dict[str, float] = {}
    assert proc.stderr is not None
    for line in proc.stderr:
        now = time.perf_counter() - start
        if "garbage-collect" in line and "gc_start" not in marks:
            marks["gc_start"] = now
        elif "writable again" in line:
            marks["writable_start"] = now
    out = proc.stdout.read() if proc.stdout else ""
    if proc.wait() != 0:
        sys.exit(f"gc failed:\n{out}")
    total = time.perf_counter() - start
    phases = {
        "read-only switch": marks.get("gc_start", 0.0),
        "garbage-collect": marks.get("writable_start", 0.0) - marks.get("gc_start", 0.0),
        "writable switch": total - marks.get("writable_start", total),
    }
    return total, phases, json.loads(out)["hosts"]["localhost"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=1000, help="blobs in the registry (half become garbage)")
    parser.add_argument("--image", default="regdeploy-test/registry:2.8.2")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="regdeploy-bench-gc-"))
    env = cli_env(tmp)
    inventory, name = local_inventory(tmp, args.image, auth={"users": [{"name": "bench"}], "bcrypt_cost": 4},
                                      tls={"mode": "selfsigned"})  # fmt: skip
    try:
        up = run([*REGDEPLOY, "up", "-i", str(inventory)], env)
        if up.returncode != 0:
            sys.exit(up.stdout + up.stderr)
        empty_total, _, _ = timed_gc(inventory, env)
        import yaml

        port = yaml.safe_load(inventory.read_text())["all"]["hosts"]["localhost"]["registry"]["port"]
        ca = (tmp / "config" / "certs" / "ca.crt").read_bytes()
        password = (tmp / ".regdeploy" / "secrets" / "users" / "bench").read_text()

        def client() -> RegistryClient:
            return RegistryClient("127.0.0.1", port, ca, "bench", password, server_hostname="localhost")

        images = args.blobs // 2  # each image: a layer and a config
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            digests = list(pool.map(lambda i: push(client(), i), range(images)))
            list(pool.map(lambda d: client().request("DELETE", f"/v2/bench/gc/manifests/{d}"), digests[::2]))
        fill = time.perf_counter() - started
        total, phases, report = timed_gc(inventory, env)
        print(f"CPUs: {len(__import__('os').sched_getaffinity(0))}; registry filled with {images * 2} blobs "
              f"({images} images) in {fill:.1f}s, every other manifest deleted")  # fmt: skip
        print(f"{'gc with nothing to collect':<34} {empty_total:6.2f} s")
        what = f"gc of {report['blobs']} blobs"
        print(f"{what:<34} {total:6.2f} s  (freed {report['freed']} bytes)")
        for phase, seconds in phases.items():
            print(f"  {phase:<32} {seconds:6.2f} s")
    finally:
        remove_local(inventory, name, env)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
