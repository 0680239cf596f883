"""``storage.s3probe`` against a real S3 server: SeaweedFS's ``weed`` on loopback (and once inside a lab
host), with the bucket made by regdeploy's own signer. The probe's writes leave no object behind; a
wrong key, a missing bucket and a stopped server each give one line naming the cause and no secret.

Traffic goes only to loopback and to the lab's own network; the servers and their files are removed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import Lab, lab_fixture
from s3server import S3Server, start_local, start_on_lab

from regdeploy.storage.s3probe import StorageError, probe, request

pytestmark = pytest.mark.integration

lab = lab_fixture(1)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    tmp = tmp_path_factory.mktemp("s3")
    server = start_local(tmp)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_probe_writes_reads_and_leaves_nothing(s3: S3Server) -> None:
    assert 0 < probe(s3.target()) < 5
    assert 0 < probe(s3.target(), write=False) < 5
    assert s3.keys_settled([]) == []


def test_probe_under_a_root_directory(s3: S3Server) -> None:
    request(s3.target(), "PUT", "other/kept", body=b"not the probe's")
    try:
        target = s3.target(rootdirectory="/registry")
        probe(target)
        probe(target, write=False)
        assert s3.keys_settled(["other/kept"]) == ["other/kept"]
    finally:
        request(s3.target(), "DELETE", "other/kept")
    assert s3.keys_settled([]) == []


def test_a_wrong_secret_key(s3: S3Server) -> None:
    wrong = "wrong-" + s3.secret[::-1]
    for write in (True, False):
        with pytest.raises(StorageError) as info:
            probe(s3.target(secretkey=wrong), write=write)
        text = str(info.value)
        assert text.startswith(f"S3 at {s3.url} refused bucket 'registry' (")
        assert "SignatureDoesNotMatch: " in text
        assert text.endswith("(check secretkey)")
        assert info.value.code == "SignatureDoesNotMatch"
        for secret in (wrong, s3.secret, s3.access, "Signature=", "Credential="):
            assert secret not in text
        assert "\n" not in text


def test_an_unknown_access_key(s3: S3Server) -> None:
    with pytest.raises(StorageError, match=r"InvalidAccessKeyId: .*\(check accesskey\)$") as info:
        probe(s3.target(accesskey="AKNOBODY000000000000"))
    assert s3.secret not in str(info.value)
    assert "AKNOBODY000000000000" not in str(info.value)


def test_a_missing_bucket(s3: S3Server) -> None:
    target = s3.target(bucket="no-such-bucket")
    for write, method in ((True, "PUT"), (False, "GET")):
        with pytest.raises(StorageError) as info:
            probe(target, write=write)
        assert str(info.value).startswith(
            f"S3 at {s3.url} refused bucket 'no-such-bucket' ({method} /no-such-bucket"
        )
        assert "NoSuchBucket: The specified bucket does not exist" in str(info.value)
    with pytest.raises(StorageError, match="NoSuchBucket"):  # the probe did not create it
        probe(target, write=False)


def test_a_stopped_server_then_started_again(s3: S3Server) -> None:
    request(s3.target(), "PUT", "kept", body=b"across a restart")
    s3.stop()
    try:
        for write in (True, False):
            with pytest.raises(StorageError) as info:
                probe(s3.target(), write=write, timeout=2)
            assert str(info.value) == f"cannot reach S3 at {s3.url} (bucket 'registry'): connection refused"
    finally:
        s3.start()
    assert probe(s3.target()) > 0
    assert request(s3.target(), "GET", "kept") == b"across a restart"  # same data, same ports
    request(s3.target(), "DELETE", "kept")
    assert s3.keys_settled([]) == []


def test_on_a_lab_host(lab: Lab, tmp_path: Path) -> None:
    host = lab.hosts[0]
    server = start_on_lab(host, tmp_path)
    try:
        assert server.url.startswith(f"http://{host.ip}:")
        probe(server.target())
        probe(server.target(), write=False)
        assert server.keys_settled([]) == []
        server.stop()
        with pytest.raises(StorageError, match=rf"^cannot reach S3 at {server.url} \(bucket 'registry'\): "):
            probe(server.target(), timeout=2)
        server.start()
        probe(server.target())
    finally:
        server.close()
    assert host.sh("ls /tmp").split() == []
    assert host.sh("pgrep -x weed || true").strip() == ""
    assert list(tmp_path.iterdir()) == []
