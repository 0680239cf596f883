"""Start and remove lab hosts from the command line, for Molecule's fleet scenario (molecule/fleet).

    python tests/integration/labctl.py start --count 2 --dir DIR --prefix NAME   # prints DIR/lab.json
    python tests/integration/labctl.py stop --prefix NAME

``start`` leaves the hosts running (tests use :func:`lab.start_lab` as a fixture instead) and writes
``DIR/lab.json``: each host's name and address, the client key, known_hosts and ssh_config paths.
``stop`` removes every container, volume and network named NAME-* that carries the lab label, so
it also cleans up after a ``start`` that failed half-way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from lab import LAB_LABEL, start_lab


def _client() -> Any:
    import docker

    return docker.from_env()


def start(count: int, directory: Path, prefix: str) -> dict[str, Any]:
    client = _client()
    lab = start_lab(client, count, directory, prefix=prefix)
    info = {
        "prefix": prefix,
        "key": str(lab.key.private),
        "known_hosts": str(lab.known_hosts),
        "ssh_config": str(lab.tmp / "ssh_config"),
        "hosts": [{"name": h.name, "address": h.ip} for h in lab.hosts],
    }
    (directory / "lab.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def stop(prefix: str) -> list[str]:
    client = _client()
    removed: list[str] = []

    def ours(name: str) -> bool:
        return name == prefix or name.startswith(prefix + "-")

    for container in client.containers.list(all=True, filters={"label": LAB_LABEL}):
        if ours(container.name):
            container.remove(force=True, v=True)
            removed.append(container.name)
    for volume in client.volumes.list(filters={"label": LAB_LABEL}):
        if ours(volume.name):
            with contextlib.suppress(Exception):
                volume.remove(force=True)
                removed.append(volume.name)
    for network in client.networks.list(filters={"label": LAB_LABEL}):
        if ours(network.name):
            network.remove()
            removed.append(network.name)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("start", help="start lab hosts and write DIR/lab.json")
    up.add_argument("--count", type=int, default=2)
    up.add_argument("--dir", type=Path, required=True)
    up.add_argument("--prefix", required=True)
    down = sub.add_parser("stop", help="remove the lab hosts, volumes and network named PREFIX-*")
    down.add_argument("--prefix", required=True)
    args = parser.parse_args(argv)
    if not args.prefix.startswith("regdeploy-"):
        parser.error("--prefix must start with 'regdeploy-': lab objects never take a user's names")
    if args.command == "start":
        print(json.dumps(start(args.count, args.dir, args.prefix)))
    else:
        print(json.dumps({"removed": stop(args.prefix)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
