"""Benchmark `regdeploy up` over SSH on lab hosts: a first `up` (the image shipped to every host) and
the idempotent re-run, for 1, 4 and 8 hosts.

Every figure is a whole CLI process (interpreter start and imports included: what a user waits for);
the idempotent figure is the median of --runs runs. Starts its own lab hosts (tests/integration/lab.py:
Docker-in-Docker containers with sshd and dockerd on a private network; the lab image is built once
and kept) and removes them at the end. Needs root and the engine set up by scripts/setup.sh.

    .venv/bin/python bench/fleet.py [--hosts 1,4,8] [--runs 5] [--image regdeploy-test/registry:2.8.2]

Targets (issue 6): 8 hosts <= 1.5x the time of 1 host; an idempotent `up` over SSH <= 1 s for one host.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from common import REGDEPLOY, cli_env, timed_cpu
from lab import Lab, start_lab


def write_inventory(root: Path, lab: Lab, image: str) -> None:
    hosts = {h.name: {"ansible_host": h.ip} for h in lab.hosts}
    group = {
        **{k: v for k, v in lab.ssh_vars(lab.hosts[0]).items() if k != "ansible_host"},
        "registry": {
            "name": "bench-registry",
            "image": image,
            "port": 5001,
            "auth": {"users": [{"name": "bench"}]},
        },
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"fleet": {"hosts": hosts}}}}))
    (root / "group_vars").mkdir(exist_ok=True)
    (root / "group_vars" / "fleet.yml").write_text(yaml.safe_dump(group))


def reset(lab: Lab, count: int, image: str) -> None:
    """Back to a bare host: no registry container, files or image (so the next `up` ships again)."""
    for host in lab.hosts[:count]:
        host.sh(
            f"docker rm -f bench-registry >/dev/null 2>&1; docker rmi -f {image} >/dev/null 2>&1; "
            "rm -rf /etc/regdeploy /var/lib/regdeploy; true"
        )


def pad_known_hosts(path: Path, count: int) -> None:
    import paramiko

    key = paramiko.ECDSAKey.generate()
    lines = [f"{paramiko.HostKeys.hash_host(f'host{i}.example.com')} {key.get_name()} {key.get_base64()}\n"
             for i in range(count)]  # fmt: skip
    path.write_text("".join(lines) + path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", default="1,4,8", help="comma-separated host counts")
    parser.add_argument("--runs", type=int, default=5, help="idempotent runs per count (median)")
    parser.add_argument("--image", default="regdeploy-test/registry:2.8.2")
    parser.add_argument("--known-hosts-lines", type=int, default=0, metavar="N",
                        help="put N other hosts' hashed keys before the lab's in known_hosts, as a "
                        "long-lived ~/.ssh/known_hosts has")  # fmt: skip
    args = parser.parse_args()
    counts = [int(n) for n in args.hosts.split(",")]

    import docker

    client = docker.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="regdeploy-bench-fleet-"))
    lab = start_lab(client, max(counts), tmp / "lab")
    if args.known_hosts_lines:
        pad_known_hosts(lab.known_hosts, args.known_hosts_lines)
    known_lines = len(lab.known_hosts.read_text().splitlines())
    env = cli_env(tmp)
    rows: list[tuple[int, float, float, float, float, float]] = []
    try:
        inventory = tmp / "inventory"
        write_inventory(inventory, lab, args.image)
        up = [*REGDEPLOY, "up", "-i", str(inventory)]
        # Warm-up: the run's state (CA, passwords, bcrypt hashes) is made once, as for a real user.
        timed_cpu([*up, "--limit", "lab1"], env)
        size = client.images.get(args.image).attrs.get("Size", 0)
        for count in counts:
            limit = ["--limit", ",".join(h.name for h in lab.hosts[:count])]
            reset(lab, count, args.image)
            first, first_cpu = timed_cpu([*up, *limit], env)
            again = [timed_cpu([*up, *limit], env) for _ in range(args.runs)]
            walls = [wall for wall, _ in again]
            cpu = statistics.median(c for _, c in again)
            rows.append((count, first, first_cpu, statistics.median(walls), max(walls), cpu))
    finally:
        lab.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nregdeploy up over SSH on lab hosts (image {args.image}, {size / 1e6:.1f} MB; 2 cores)")
    built = f"lab image built in {lab.image_seconds:.0f}s" if lab.image_seconds else "lab image cached"
    print(f"lab: {len(lab.hosts)} hosts created in {lab.seconds:.1f}s ({built}); "
          f"known_hosts: {known_lines} lines")  # fmt: skip
    print("wall seconds of whole CLI processes; cpu = seconds the regdeploy process itself computed")
    header = ("hosts", "first up (ships)", "cpu", "idempotent (median)", "max", "cpu")
    print("  ".join(f"{h:>{w}}" for h, w in zip(header, (5, 16, 5, 19, 5, 5), strict=True)))
    for count, first, first_cpu, median, worst, cpu in rows:
        print(
            f"{count:>5}  {first:>15.2f}s  {first_cpu:>4.2f}s  {median:>18.2f}s  {worst:>4.2f}s  {cpu:>4.2f}s"
        )
    if rows and rows[0][0] == 1:
        base = rows[0]
        for count, first, _, median, _, _ in rows[1:]:
            print(
                f"{count} hosts vs 1: first up x{first / base[1]:.2f}, idempotent up x{median / base[3]:.2f}"
            )


if __name__ == "__main__":
    main()
