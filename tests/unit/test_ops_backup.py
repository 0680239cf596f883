"""ops/backup.py and transport/streams.py without a registry: the data dir as a tar stream through the
local transport and back (modes and owner kept, swapped in only when complete and intact), the checks
that refuse a restore before anything is written, and S3 registries backed up as state only."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any, cast

import pytest

from regdeploy.errors import HostError, InputError
from regdeploy.ops import backup
from regdeploy.ops.run import HostJob
from regdeploy.spec.registry import parse_spec
from regdeploy.transport import streams
from regdeploy.transport.local import LocalTransport

S3 = {
    "bucket": "registry",
    "region": "us-east-1",
    "regionendpoint": "http://10.9.0.5:8333",
    "accesskey": {"env": "T_S3_ACCESS"},
    "secretkey": {"env": "T_S3_SECRET"},
}


def tree(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every entry under *root*: (mode, uid, content)."""
    out: dict[str, tuple[int, int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_mode & 0o7777, st.st_uid,
                                            path.read_bytes() if path.is_file() else None)  # fmt: skip
    return out


def make_data(root: Path) -> Path:
    data = root / "data"
    blobs = data / "docker" / "registry" / "v2" / "blobs" / "sha256" / "ab"
    blobs.mkdir(parents=True)
    (blobs / "data").write_bytes(os.urandom(3 << 20))  # more than one chunk of the stream
    (data / "docker" / "registry" / "v2" / "link").write_text("sha256:ab")
    os.chmod(data / "docker" / "registry" / "v2" / "link", 0o640)
    (data / "relay-queue").mkdir(mode=0o700)
    os.chmod(data, 0o750)
    return data


def said() -> tuple[list[str], Any]:
    lines: list[str] = []
    return lines, lines.append


def test_pipe_streams_out_and_in_and_reports_the_exit_code(tmp_path: Path) -> None:
    local = LocalTransport("localhost")
    out = bytearray()
    done = streams.pipe(local, ["sh", "-c", "head -c 3000000 /dev/zero; echo oops >&2; exit 3"],
                        stdout=out.extend)  # fmt: skip
    assert (done.code, len(out), done.detail) == (3, 3_000_000, "oops")
    target = tmp_path / "copy"
    fed = streams.pipe(local, ["sh", "-c", 'cat > "$1"', "sh", str(target)],
                       stdin=iter([b"a" * 1_500_000, b"b"]))  # fmt: skip
    assert fed.code == 0 and target.read_bytes() == b"a" * 1_500_000 + b"b"
    # A command that stops reading early: its exit code, not a broken pipe.
    early = streams.pipe(local, ["sh", "-c", "exit 4"], stdin=iter([b"x" * (1 << 20)] * 64))
    assert early.code == 4
    assert streams.run(local, ["sh", "-c", "echo hi"]) == (0, "hi\n", "")


def test_archive_then_extract_keeps_modes_and_hands_files_to_the_owner(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    before = tree(data)
    local = LocalTransport("localhost")
    archive = tmp_path / "backup" / "localhost" / "data.tar"
    archive.parent.mkdir(parents=True)
    lines, say = said()
    made = backup.archive_data(local, str(data), archive, 3 << 20, say)
    assert archive.stat().st_mode & 0o777 == 0o600
    assert made.bytes == archive.stat().st_size and not archive.with_suffix(".tar.partial").exists()
    assert lines[-1].startswith("copied ") and "MB/s" in lines[-1]
    with tarfile.open(archive) as tar:  # what the local backup wrote before: readable by tarfile
        assert "./docker/registry/v2/link" in tar.getnames()

    target = tmp_path / "restored" / "data"
    owner = (4242, 4343) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    sent = backup.extract_data(local, archive, str(target), owner, made.sha256, say)
    assert sent == made.bytes
    after = tree(target)
    assert {k: (m, c) for k, (m, _, c) in after.items()} == {k: (m, c) for k, (m, _, c) in before.items()}
    assert {uid for _, uid, _ in after.values()} == {owner[0]} and target.stat().st_uid == owner[0]
    assert target.stat().st_mode & 0o777 == 0o750
    assert sorted(p.name for p in target.parent.iterdir()) == ["data"]  # nothing beside it


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_broken_archive_leaves_the_previous_data_as_it_was(tmp_path: Path, damage: str) -> None:
    local = LocalTransport("localhost")
    archive = tmp_path / "data.tar"
    made = backup.archive_data(local, str(make_data(tmp_path / "src")), archive, None, said()[1])
    raw = bytearray(archive.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]  # tar reports the unexpected end
    else:
        raw[len(raw) // 2] ^= 0xFF  # inside the blob: tar cannot tell, the digest can
    archive.write_bytes(bytes(raw))
    previous = tmp_path / "live" / "data"
    previous.mkdir(parents=True)
    (previous / "kept").write_text("what was there")
    with pytest.raises(HostError, match="nothing replaced"):
        backup.extract_data(local, archive, str(previous), (os.geteuid(), os.getegid()), made.sha256,
                            said()[1])  # fmt: skip
    assert [p.name for p in previous.iterdir()] == ["kept"]
    assert (previous / "kept").read_text() == "what was there"
    assert sorted(p.name for p in previous.parent.iterdir()) == ["data"]


def test_benign_tar_warnings_keep_the_backup_real_errors_fail_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake(code: int, err: str) -> Any:
        def pipe(transport: Any, argv: Any, *, stdout: Any, **_: Any) -> streams.Finished:
            stdout(b"\0" * 1024)
            return streams.Finished(code, err)

        return pipe

    archive = tmp_path / "data.tar"
    local = LocalTransport("localhost")
    monkeypatch.setattr(streams, "pipe", fake(1, "tar: ./relay-queue/x: file changed as we read it\n"))
    made = backup.archive_data(local, "/data", archive, None, said()[1])
    assert made.warnings == ("tar: ./relay-queue/x: file changed as we read it",)
    monkeypatch.setattr(streams, "pipe", fake(2, "tar: ./docker: Cannot open: Permission denied\n"))
    with pytest.raises(HostError, match="Permission denied"):
        backup.archive_data(local, "/data", archive, None, said()[1])
    assert not archive.with_suffix(".tar.partial").exists() and archive.exists()  # the first one stays


def manifest_dir(tmp_path: Path, entry: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    source = tmp_path / "backup"
    (source / "reg1").mkdir(parents=True)
    data = make_data(tmp_path / "src")
    made = backup.archive_data(LocalTransport("localhost"), str(data), source / "reg1" / "data.tar", None,
                               said()[1])  # fmt: skip
    doc = {"format": 1, "hosts": {"reg1": entry or {"registry": "registry", "data": "reg1/data.tar",
                                                    "bytes": made.bytes, "sha256": made.sha256}}}  # fmt: skip
    (source / backup.MANIFEST).write_text(json.dumps(doc))
    return source, backup.read_manifest(source)


def test_check_restore_refuses_before_anything_is_written(tmp_path: Path) -> None:
    source, doc = manifest_dir(tmp_path)
    spec = parse_spec("reg1", None)
    backup.check_restore(doc, source, "reg1", spec, False)
    with pytest.raises(InputError, match="pass --from-host NAME"):
        backup.check_restore(doc, source, "reg2", spec, False)
    backup.check_restore(doc, source, "reg2", spec, False, from_host="reg1")  # another host's data
    other = parse_spec("reg1", {"name": "other"})
    with pytest.raises(InputError, match=r"holds registry 'registry'.*--force"):
        backup.check_restore(doc, source, "reg1", other, False)
    backup.check_restore(doc, source, "reg1", other, True)
    with pytest.raises(InputError, match="keeps its data on s3://registry"):
        backup.check_restore(doc, source, "reg1", parse_spec("reg1", {"storage": {"s3": S3}}), True)
    archive = source / "reg1" / "data.tar"
    with archive.open("r+b") as fh:
        fh.truncate(archive.stat().st_size - 10240)  # whole blocks gone: tarfile alone may not notice
    with pytest.raises(InputError, match="truncated or replaced"):
        backup.check_restore(doc, source, "reg1", spec, False)
    entry = doc["hosts"]["reg1"]
    archive.write_bytes(b"\xff" * entry["bytes"])  # the size the backup wrote, but no tar
    with pytest.raises(InputError, match="not a readable backup archive"):
        backup.check_restore(doc, source, "reg1", spec, False)
    with pytest.raises(InputError, match="not a regdeploy backup"):
        backup.read_manifest(tmp_path)


def test_check_data_dir_refuses_data_without_force(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spec = parse_spec("localhost", {"data_dir": str(data)})
    local = {"ansible_connection": "local"}
    backup.check_data_dir("localhost", local, spec, False)  # absent
    data.mkdir()
    backup.check_data_dir("localhost", local, spec, False)  # empty
    (data / ".hidden").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        backup.check_data_dir("localhost", local, spec, False)
    backup.check_data_dir("localhost", local, spec, True)


def test_an_s3_registry_is_backed_up_as_its_state_only(tmp_path: Path) -> None:
    spec = parse_spec("reg1", {"storage": {"s3": S3}})
    job = HostJob("reg1", {"ansible_host": "10.9.0.11"}, spec, cast(Any, None))
    lines: list[str] = []
    entry = backup.backup_host(job, tmp_path, cast(Any, None), lambda host, m: lines.append(f"{host} {m}"))
    assert entry["data"] is None and entry["storage"] == "s3://registry at http://10.9.0.5:8333"
    assert "storage's own means" in lines[0] and "state directory is backed up" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no host contacted, no archive
    doc = {"format": 1, "hosts": {"reg1": entry}}
    backup.check_restore(doc, tmp_path, "reg1", spec, False)  # the state restores, nothing else
    restored = backup.restore_host(doc, tmp_path, "reg1", {}, spec, lambda host, m: lines.append(m))
    assert restored["data_dir"] is None and "state only" in lines[-1]


def test_an_archive_the_previous_version_wrote_restores(tmp_path: Path) -> None:
    """Before the stream, local backups were written by Python's tarfile (PAX, the content at ".")."""
    data = make_data(tmp_path)
    archive = tmp_path / "data.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(data, arcname=".")
    target = tmp_path / "restored"
    me = (os.geteuid(), os.getegid())
    backup.extract_data(LocalTransport("localhost"), archive, str(target), me, None, said()[1])
    assert {k: (m, c) for k, (m, _, c) in tree(target).items()} == {
        k: (m, c) for k, (m, _, c) in tree(data).items()
    }
