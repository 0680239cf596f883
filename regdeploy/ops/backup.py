"""``regdeploy backup --to DIR`` / ``restore --from DIR``: a registry's data and regdeploy's state.

A backup is consistent: the registry is read-only while its data directory is copied (pulls keep
working; the switches restart it, as ``gc`` does), and the state directory (the CA and its key,
generated passwords and secrets, the token signing key) comes along, so a restored registry keeps its
certificates and users. The state is secret: the backup directory is 0700 and its files 0600, and it
must be kept like the state directory itself (or encrypted at rest by the storage it goes to).

``DIR/regdeploy-backup.json`` says what is there; ``DIR/HOST/data.tar`` holds each host's data;
``DIR/state/`` the state. The data directory travels as a tar stream through the host's transport
(``tar`` on the host, over the SSH connection for a remote host, a subprocess on this machine), never
held in memory: the same archive whether the host is this machine or a server, so either restores
onto any host. The manifest records each archive's size and sha256.

Restoring refuses (bad input, before anything is written) a directory that is no backup, a backup of
another registry name (without ``--force``), an archive that is not the one the backup wrote, and a
data directory that is not empty (without ``--force``). The archive is unpacked into a directory
beside the data directory on the host, owned by the registry's user, and swapped in only once it is
complete and its digest matches: a failed restore leaves the data there as it was. Then
``regdeploy up`` runs the registry on the restored data.

A registry on object storage (``storage.s3``) keeps its data in the bucket: its backup is the
storage's own (versioning, replication); ``backup`` then records the state only, and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from regdeploy.errors import HostError, InputError, RegdeployError
from regdeploy.materials.secrets import Masker
from regdeploy.ops.readonly import read_only
from regdeploy.ops.run import HostJob, Progress, host_error

if TYPE_CHECKING:
    from regdeploy.spec.registry import RegistrySpec
    from regdeploy.transport.base import Transport

MANIFEST = "regdeploy-backup.json"
FORMAT = 1
CHUNK = 1 << 20
PROGRESS_EVERY = 2.0  # seconds between progress lines of a copy
FREE_MARGIN = 16 << 20  # tar's headers and padding, and room to spare
# GNU tar exits 1 on these while archiving (and 2 on real errors): files of the units that write
# outside the registry's storage (the relay's queue) may come and go in the read-only window.
_BENIGN = re.compile(r"file changed as we read it|File removed before we read it|socket ignored")

# The swap, on the host: the data directory steps aside, the complete copy takes its name, and only
# then is the old one removed; if the rename fails, the old one takes its name back.
SWAP_SCRIPT = r"""
data=$1 fresh=$2 old=$3
rm -rf -- "$old" || exit 1
if [ -e "$data" ] || [ -L "$data" ]; then mv -- "$data" "$old" || exit 1; fi
if ! mv -- "$fresh" "$data"; then
  if [ -e "$old" ] || [ -L "$old" ]; then mv -- "$old" "$data"; fi
  exit 1
fi
rm -rf -- "$old"
"""

# "absent", "empty" or "data"; exit 1 when the directory cannot be listed.
CONTENT_SCRIPT = r"""
[ -e "$1" ] || [ -L "$1" ] || { echo absent; exit 0; }
listing=$(ls -A -- "$1") || exit 1
if [ -z "$listing" ]; then echo empty; else echo data; fi
"""

Say = Callable[[str], None]


def _mb(n: int | float) -> str:
    return f"{n / 1e6:.1f} MB"


class _Meter:
    """Counts and hashes the bytes of one copy, and says how far it got every PROGRESS_EVERY s."""

    def __init__(self, say: Say, what: str, total: int | None) -> None:
        self._say, self._what, self._total = say, what, total
        self.bytes = 0
        self._sha = hashlib.sha256()
        self.started = self._last = time.monotonic()

    def add(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self._sha.update(chunk)
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY:
            self._last = now
            share = f" of ~{_mb(self._total)}" if self._total else ""
            self._say(f"{self._what}: {_mb(self.bytes)}{share}, {_mb(self.rate)}/s")

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.bytes / max(self.seconds, 1e-3)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def summary(self, done: str) -> str:
        return f"{done} {_mb(self.bytes)} in {self.seconds:.1f}s ({_mb(self.rate)}/s)"


@dataclass(frozen=True)
class Archived:
    bytes: int
    sha256: str
    seconds: float
    warnings: tuple[str, ...] = ()


# --- backup ---------------------------------------------------------------------------------------


def backup_host(job: HostJob, to: Path, masker: Masker, progress: Progress) -> dict[str, Any]:
    """One host's data into ``to/HOST/data.tar``, inside the registry's read-only window; the entry
    the manifest keeps for it."""
    from regdeploy.transport import open_transport

    spec = job.spec

    def say(message: str) -> None:
        progress(job.name, message)

    if spec.storage.s3 is not None or not spec.serves:
        return _no_data(job, say)
    started = time.monotonic()
    target = to / job.name
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    archive = target / "data.tar"
    transport = open_transport(job.name, job.vars, say)
    try:
        size = transport.dir_size(spec.data_dir)
        if size is None:
            raise HostError(f"{spec.data_dir} does not exist: nothing to back up (has `up` run?)")
        free = shutil.disk_usage(target).free
        if free < size + FREE_MARGIN:
            raise HostError(
                f"disk full: {target} has {_mb(free)} free, the data dir holds {_mb(size)}; "
                "nothing was changed"
            )
        with read_only(job, masker, progress, "read-only while the data is copied", "writable again"):
            copied = archive_data(transport, spec.data_dir, archive, size, say)
    except RegdeployError as exc:
        raise host_error(job.name, exc, masker) from None
    finally:
        transport.close()
    for warning in copied.warnings:
        say(f"warning: {warning}")
    entry: dict[str, Any] = {"registry": spec.name, "storage": "filesystem", "data": f"{job.name}/data.tar",
                             "bytes": copied.bytes, "sha256": copied.sha256,
                             "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    if copied.warnings:
        entry["warnings"] = list(copied.warnings)
    return entry


def _no_data(job: HostJob, say: Say) -> dict[str, Any]:
    s3 = job.spec.storage.s3
    if s3 is None:
        say("runs a load balancer only: no data to copy; the state directory is backed up")
        return {"registry": job.spec.name, "storage": None, "data": None, "bytes": 0, "seconds": 0.0}
    say(
        f"data on {s3.describe}: not copied (back it up with the storage's own means: bucket versioning, "
        "replication); the state directory is backed up"
    )
    return {"registry": job.spec.name, "storage": s3.describe, "data": None, "bytes": 0, "seconds": 0.0}


def archive_data(transport: Transport, data_dir: str, archive: Path, expected: int | None,
                 say: Say) -> Archived:  # fmt: skip
    """*data_dir* of the host as a tar into *archive* (0600, complete or absent)."""
    from regdeploy.transport import streams

    tmp = archive.with_suffix(".tar.partial")
    meter = _Meter(say, "copying the data", expected)
    say(f"copying {data_dir} (~{_mb(expected or 0)}) to {archive}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:

            def sink(chunk: bytes) -> None:
                fh.write(chunk)
                meter.add(chunk)

            done = streams.pipe(transport, ["tar", "--numeric-owner", "-C", data_dir, "-cf", "-", "."],
                                stdout=sink)  # fmt: skip
            fh.flush()
            os.fsync(fh.fileno())
        lines = [ln.strip() for ln in done.err.splitlines() if ln.strip()]
        benign = done.code == 1 and lines and all(_BENIGN.search(ln) for ln in lines)
        if done.code != 0 and not benign:
            raise HostError(f"cannot archive {data_dir}: {done.detail}")
        if meter.bytes == 0:
            raise HostError(f"cannot archive {data_dir}: tar wrote nothing")
        os.replace(tmp, archive)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    say(meter.summary("copied"))
    return Archived(meter.bytes, meter.sha256, meter.seconds, tuple(lines) if done.code else ())


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


# --- restore --------------------------------------------------------------------------------------


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


def source_entry(doc: dict[str, Any], source: Path, name: str, from_host: str | None) -> dict[str, Any]:
    """The backup's entry restored onto host *name*: its own, or *from_host*'s."""
    wanted = from_host or name
    entry = doc["hosts"].get(wanted)
    if not isinstance(entry, dict):
        hint = "" if from_host else ": pass --from-host NAME to restore another host's data onto it"
        raise InputError(
            f"--from {source}: the backup has no host {wanted!r} (it has {', '.join(doc['hosts'])}){hint}"
        )
    return entry


def check_restore(doc: dict[str, Any], source: Path, name: str, spec: RegistrySpec, force: bool,
                  from_host: str | None = None) -> None:  # fmt: skip
    """Bad input found without touching the host: a host the backup lacks, another registry's backup,
    data for a registry on object storage, an archive that is not the one the backup wrote."""
    entry = source_entry(doc, source, name, from_host)
    if entry.get("registry") != spec.name and not force:
        raise InputError(
            f"--from {source}: host {from_host or name!r} holds registry {entry.get('registry')!r}, the "
            f"inventory says {spec.name!r}: pass --force to restore it anyway"
        )
    if entry.get("data") is None:
        return  # the state only (its data is on object storage)
    if spec.storage.s3 is not None:
        raise InputError(
            f"--from {source}: {name} keeps its data on {spec.storage.s3.describe}: a data directory "
            "cannot be restored there (restore the bucket by the storage's own means)"
        )
    archive = source / str(entry["data"])
    try:
        size = archive.stat().st_size
        if isinstance(entry.get("bytes"), int) and size != entry["bytes"]:
            raise InputError(
                f"{archive}: {size} bytes, the backup wrote {entry['bytes']}: truncated or replaced since"
            )
        with tarfile.open(archive) as tar:
            tar.getmembers()  # the whole archive reads, before anything is replaced
    except (OSError, tarfile.TarError) as exc:
        raise InputError(f"{archive}: not a readable backup archive: {exc}") from None


def check_data_dir(name: str, host_vars: Mapping[str, Any], spec: RegistrySpec, force: bool) -> None:
    """Refuse (bad input) a data directory on the host that holds data, unless *force*."""
    from regdeploy.transport import open_transport, remote, streams

    transport = open_transport(name, host_vars)
    try:
        code, out, err = streams.run(transport, remote.sh(CONTENT_SCRIPT, spec.data_dir))
    finally:
        transport.close()
    if code != 0:
        raise HostError(f"{name}: cannot list {spec.data_dir}: {' '.join(err.split())[:200]}")
    if out.strip() == "data" and not force:
        raise InputError(
            f"{name}: {spec.data_dir}: not empty: restore into an empty data_dir, or pass --force to "
            "replace it"
        )


def restore_host(
    doc: dict[str, Any], source: Path, name: str, host_vars: Mapping[str, Any], spec: RegistrySpec,
    progress: Progress, from_host: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    from regdeploy.deploy.facts import inspect_container
    from regdeploy.transport import open_transport

    def say(message: str) -> None:
        progress(name, message)

    entry = source_entry(doc, source, name, from_host)
    if entry.get("data") is None:
        where = entry.get("storage") or "no data directory"
        say(f"the backup holds no data for it ({where}): its state only")
        return {"data_dir": None, "bytes": 0, "from_host": from_host or name, "storage": entry.get("storage")}
    started = time.monotonic()
    transport = open_transport(name, host_vars, say)
    try:
        running = inspect_container(transport.engine(), spec.name)
        if running is not None and running.running:
            # It would keep serving (and taking pushes into) the directory replaced under it.
            raise HostError(f"registry {spec.name} is running: `regdeploy down` first, then restore")
        owner = spec.run.on_host(transport.identity()).owner
        say(f"restoring {entry['data']} into {spec.data_dir}")
        archive = source / str(entry["data"])
        sent = extract_data(transport, archive, spec.data_dir, owner, entry.get("sha256"), say)
    except RegdeployError as exc:
        text = str(exc)
        raise HostError(text if text.startswith(f"{name}:") else f"{name}: {text}") from None
    finally:
        transport.close()
    return {"data_dir": spec.data_dir, "bytes": sent, "from_host": from_host or name,
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip


def extract_data(transport: Transport, archive: Path, data_dir: str, owner: tuple[int, int],
                 sha256: str | None, say: Say) -> int:  # fmt: skip
    """*archive* unpacked beside *data_dir* on the host, owned by *owner*, then swapped in: the data
    directory is replaced only by a complete copy whose digest matches. The bytes sent."""
    from regdeploy.transport import remote, streams

    data = PurePosixPath(data_dir)
    fresh = str(data.with_name(f".{data.name}.regdeploy-restore"))
    old = str(data.with_name(f".{data.name}.regdeploy-previous"))
    size = archive.stat().st_size
    free = transport.free_space(str(data.parent))
    if free is not None and free < size + FREE_MARGIN:
        raise HostError(f"disk full: {data.parent} has {_mb(free)} free, the archive holds {_mb(size)}")
    transport.remove_tree(fresh)  # what an interrupted restore left
    transport.makedirs(fresh, 0o700)
    meter = _Meter(say, "restoring the data", size)
    try:
        with archive.open("rb") as fh:

            def chunks() -> Iterator[bytes]:
                while chunk := fh.read(CHUNK):
                    meter.add(chunk)
                    yield chunk

            untar = ["tar", "--numeric-owner", "-C", fresh, "-xpf", "-"]
            done = streams.pipe(transport, untar, stdin=chunks())
            while rest := fh.read(CHUNK):  # tar may stop at the end-of-archive blocks: hash the whole file
                meter.add(rest)
        if done.code != 0:
            where = f"{archive.parent.name}/{archive.name}"
            raise HostError(f"cannot restore {where}: {done.detail}; nothing replaced")
        if sha256 and meter.sha256 != sha256:
            raise HostError(
                f"{archive}: its sha256 is not the one the backup recorded (changed since the backup); "
                "nothing replaced"
            )
        transport.chown(fresh, *owner, recursive=True)
    except BaseException:
        try:
            transport.remove_tree(fresh)
        except RegdeployError as exc:
            say(f"could not remove {fresh}: {exc}")
        raise
    code, _, err = streams.run(transport, remote.sh(SWAP_SCRIPT, data_dir, fresh, old))
    if code != 0:
        reason = " ".join(err.split())[:200]
        if transport.stat_many([data_dir])[data_dir] is None:  # the old data is still aside
            raise HostError(f"cannot move the restored data into {data_dir}: {reason}; the data is at {old}")
        transport.remove_tree(fresh)
        raise HostError(f"cannot move the restored data into {data_dir}: {reason}; nothing replaced")
    say(meter.summary("restored"))
    return meter.bytes


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
