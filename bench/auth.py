"""Benchmark authentication: manifest GETs/s with no auth, htpasswd and token auth, side by side in one
run on the same registry image, and `regdeploy verify` in token mode.

Each configuration is deployed by `up` on the local engine (TLS, bcrypt cost 10 unless told), one small
image pushed, then `wrk` (Debian's package) loads `GET /v2/bench/app/manifests/v1` over TLS on loopback
for --seconds with --connections. The no-auth registry is the same image with a copy of the built-in
template that has no `auth:` section (`registry.templates_dir`); the token run sends one Bearer token
fetched from the token server beforehand, as docker does for a token's lifetime. Everything is removed at
the end.

    apt-get install wrk
    .venv/bin/python bench/auth.py [--seconds 5] [--connections 8] [--bcrypt-cost 10] [--verify-runs 3]
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REGDEPLOY, cli_env, free_port, local_inventory, remove_local, run, timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from deploytools import push_small_image

from regdeploy.deploy.templates import builtin_templates_dir
from regdeploy.verify.registry_api import RegistryClient

ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"
PATH = "/v2/bench/app/manifests/v1"


def no_auth_templates(tmp: Path) -> Path:
    """The built-in config template without its auth section: a registry that lets anyone in."""
    out = tmp / "templates-noauth"
    out.mkdir()
    text = (builtin_templates_dir() / "config.yml.j2").read_text()
    start = text.index("auth:\n")
    end = text.index("health:\n", start)
    (out / "config.yml.j2").write_text(text[:start] + text[end:])
    return out


def wrk(port: int, header: str | None, seconds: int, connections: int) -> float:
    args = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "-H", f"Accept: {ACCEPT}"]
    if header:
        args += ["-H", f"Authorization: {header}"]
    out = subprocess.run([*args, f"https://127.0.0.1:{port}{PATH}"], capture_output=True, text=True,
                         timeout=seconds + 30, check=True).stdout  # fmt: skip
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        sys.exit(f"wrk saw {non_2xx.group(1)} refused requests: the credentials do not work\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        sys.exit(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


def deploy(tmp: Path, image: str, env: dict[str, str], **registry: Any) -> tuple[Path, str, int]:
    port = free_port()
    inventory, name = local_inventory(tmp, image, port=port, tls={"mode": "selfsigned"}, **registry)
    timed([*REGDEPLOY, "up", "-i", str(inventory)], env)
    return inventory, name, port


def measure(label: str, image: str, args: argparse.Namespace, **registry: Any) -> tuple[float, list[float]]:
    """(requests/s, verify wall times) of one configuration."""
    tmp = Path(tempfile.mkdtemp(prefix=f"regdeploy-bench-{label}-"))
    env = cli_env(tmp)
    if label == "none":
        registry["templates_dir"] = str(no_auth_templates(tmp))
    inventory, name, port = deploy(tmp, image, env, **registry)
    try:
        ca = (tmp / "config" / "certs" / "ca.crt").read_bytes()
        password = (tmp / ".regdeploy" / "secrets" / "users" / "bench").read_text()
        client = RegistryClient("127.0.0.1", port, ca, "bench", password, server_hostname="localhost")
        push_small_image(client, "bench/app")
        header = None
        if label == "htpasswd":
            header = "Basic " + base64.b64encode(f"bench:{password}".encode()).decode()
        elif label == "token":
            token_port = registry["auth"]["token"]["port"]
            token = client.token(f"https://localhost:{token_port}/token", f"localhost:{port}",
                                 "repository:bench/app:pull")  # fmt: skip
            assert token, "the token server issued no token"
            header = f"Bearer {token}"
        rate = wrk(port, header, args.seconds, args.connections)
        walls: list[float] = []
        if label == "token":
            verify = [*REGDEPLOY, "verify", "-i", str(inventory), "--json"]
            run(verify, env)  # warm-up: bytecode compiled into this run's cache, as an install has it
            for _ in range(args.verify_runs):
                started = time.perf_counter()
                proc = run(verify, env)
                walls.append(time.perf_counter() - started)
                if proc.returncode != 0:
                    sys.exit(f"verify failed:\n{proc.stdout}\n{proc.stderr}")
        return rate, walls
    finally:
        remove_local(inventory, name, env)
        subprocess.run(["docker", "rm", "-f", f"{name}-token"], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="regdeploy-test/registry:2.8.2")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--bcrypt-cost", type=int, default=10)
    parser.add_argument("--verify-runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/auth.py needs wrk: apt-get install wrk")
    users = {"users": [{"name": "bench"}], "bcrypt_cost": args.bcrypt_cost}
    none, _ = measure("none", args.image, args, auth=users)
    htpasswd, _ = measure("htpasswd", args.image, args, auth=users)
    token_auth = {**users, "mode": "token", "token": {"port": free_port()}}
    token, walls = measure("token", args.image, args, auth=token_auth)
    print(f"manifest GETs/s over TLS, wrk {args.connections} connections x {args.seconds} s, "
          f"image {args.image}, bcrypt cost {args.bcrypt_cost}")  # fmt: skip
    print(f"  no auth:   {none:8.0f} req/s")
    print(f"  htpasswd:  {htpasswd:8.0f} req/s  ({htpasswd / none:.2f} of no auth)")
    print(f"  token:     {token:8.0f} req/s  ({token / none:.2f} of no auth)  goal >= 0.8")
    print(f"  verify in token mode: median {statistics.median(walls):.3f} s "
          f"(min {min(walls):.3f}, max {max(walls):.3f})  goal <= 1.0 s")  # fmt: skip


if __name__ == "__main__":
    main()
