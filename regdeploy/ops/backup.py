"""``regdeploy backup --to DIR`` / ``restore --from DIR``: a registry's data and regdeploy's state.

A backup is consistent: the registry is read-only while its data directory is copied (pulls keep
working; the switches restart it, as ``gc`` does), and the state directory (the CA and its key,
generated passwords and secrets, the token signing key) comes along, so a restored registry keeps its
certificates and users. The state is secret: the backup directory is 0700 and its files 0600, and it
must be kept like the state directory itself (or encrypted at rest by the storage it goes to).

``DIR/regdeploy-backup.json`` says what is there; ``DIR/HOST/data.tar`` holds each host's data;
``DIR/state/`` the state. Restoring refuses a directory that is no backup, a backup of another
registry name (without ``--force``), and a data directory that is not empty (without ``--force``);
then ``regdeploy up`` runs the registry on the restored data. Hosts reached over SSH and object
storage (the storage's own backup is the one to use) are not covered yet.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regdeploy.errors import HostError, InputError
from regdeploy.materials.secrets import Masker
from regdeploy.ops.readonly import read_only
from regdeploy.ops.run import HostJob, Progress

if TYPE_CHECKING:
    from regdeploy.spec.registry import RegistrySpec

MANIFEST = "regdeploy-backup.json"
FORMAT = 1


def _local_only(name: str, host_vars: Mapping[str, Any]) -> None:
    from regdeploy.transport.address import is_local

    if not is_local(name, host_vars):
        raise HostError(f"{name}: backup and restore work on this machine's registries only, for now")


def backup_host(job: HostJob, to: Path, masker: Masker, progress: Progress) -> dict[str, Any]:
    _local_only(job.name, job.vars)
    spec = job.spec
    started = time.monotonic()
    target = to / job.name
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    archive = target / "data.tar"
    with read_only(job, masker, progress, "read-only while the data is copied", "writable again"):
        tmp = archive.with_suffix(".tar.partial")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
            tar.add(spec.data_dir, arcname=".")
        os.replace(tmp, archive)
    return {"registry": spec.name, "data": f"{job.name}/data.tar", "bytes": archive.stat().st_size,
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip


def write_manifest(to: Path, state_root: Path, hosts: dict[str, Any], source: str) -> None:
    """The state directory and the manifest, once every host's data is in."""
    state = to / "state"
    if state.exists():
        shutil.rmtree(state)
    shutil.copytree(state_root, state, symlinks=True)
    os.chmod(state, 0o700)
    doc = {"format": FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "inventory": source, "hosts": hosts}  # fmt: skip
    fd = os.open(to / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1)


def read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"--from {source}: not a regdeploy backup (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read as a backup manifest: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("hosts"), dict):
        raise InputError(f"{path}: not a regdeploy backup manifest of format {FORMAT}")
    return doc


def check_restore(doc: dict[str, Any], source: Path, name: str, spec: RegistrySpec, force: bool) -> None:
    """Bad input before anything is written: a host the backup lacks, another registry's backup,
    a data directory that holds data already."""
    entry = doc["hosts"].get(name)
    if entry is None:
        raise InputError(
            f"--from {source}: the backup has no host {name!r} (it has {', '.join(doc['hosts'])})"
        )
    if entry.get("registry") != spec.name and not force:
        raise InputError(
            f"--from {source}: host {name!r} holds registry {entry.get('registry')!r}, the inventory "
            f"says {spec.name!r}: pass --force to restore it anyway"
        )
    data = Path(spec.data_dir)
    if data.exists() and any(data.iterdir()) and not force:
        raise InputError(f"{data}: not empty: restore into an empty data_dir, or pass --force to replace it")
    archive = source / str(entry.get("data", ""))
    try:
        with tarfile.open(archive) as tar:
            tar.getmembers()  # the whole archive reads, before anything is replaced
    except (OSError, tarfile.TarError) as exc:
        raise InputError(f"{archive}: not a readable backup archive: {exc}") from None


def restore_host(
    doc: dict[str, Any], source: Path, name: str, host_vars: Mapping[str, Any], spec: RegistrySpec,
    progress: Progress,
) -> dict[str, Any]:  # fmt: skip
    from regdeploy.deploy.facts import inspect_container
    from regdeploy.transport import open_transport

    _local_only(name, host_vars)
    transport = open_transport(name, host_vars)
    try:
        running = inspect_container(transport.engine(), spec.name)
    finally:
        transport.close()
    if running is not None and running.running:
        # It would keep serving (and taking pushes into) the directory replaced under it.
        raise HostError(f"{name}: registry {spec.name} is running: `regdeploy down` first, then restore")
    entry = doc["hosts"][name]
    data = Path(spec.data_dir)
    progress(name, f"restoring {entry['data']} into {data}")
    # Extracted beside it first: the data dir is replaced only by a complete copy.
    fresh = data.with_name(f".{data.name}.regdeploy-restore")
    if fresh.exists():
        shutil.rmtree(fresh)
    fresh.mkdir(mode=0o700, parents=True)
    try:
        with tarfile.open(source / entry["data"]) as tar:
            tar.extractall(fresh, filter="tar")
        uid, gid = spec.run.owner
        for root, dirs, files in os.walk(fresh):
            for item in (*dirs, *files):
                os.chown(os.path.join(root, item), uid, gid, follow_symlinks=False)
        os.chown(fresh, uid, gid)
    except (OSError, tarfile.TarError) as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        raise HostError(f"{name}: cannot restore {entry['data']}: {exc}") from None
    if data.exists():
        shutil.rmtree(data)
    os.replace(fresh, data)
    return {"data_dir": str(data), "bytes": entry.get("bytes")}


def restore_state(source: Path, state_root: Path, force: bool) -> list[str]:
    """Copy the backup's state files the state directory lacks (all of them with *force*)."""
    copied = []
    state = source / "state"
    for path in sorted(p for p in state.rglob("*") if p.is_file()):
        dest = state_root / path.relative_to(state)
        if dest.exists() and not force:
            continue
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copy2(path, dest)
        os.chmod(dest, 0o600)
        copied.append(str(path.relative_to(state)))
    return copied
