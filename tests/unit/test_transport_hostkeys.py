"""known_hosts bookkeeping and the fan-out rules (forks, --serial, --fail-fast), without a network."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paramiko
import pytest

from regdeploy.errors import HostError, InputError
from regdeploy.ops.fanout import fan_out
from regdeploy.transport.hostkeys import (
    CheckPolicy,
    HostKeyError,
    append_known_host,
    changed_key_message,
    fingerprint,
    unknown_key_message,
)


@pytest.fixture(scope="module")
def keys() -> tuple[paramiko.PKey, paramiko.PKey]:
    # paramiko generates only ECDSA/RSA keys itself; two different keys of one type, as a rekeyed host has.
    return paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()


def test_fingerprint_is_openssh_sha256(keys: tuple[paramiko.PKey, paramiko.PKey]) -> None:
    kind, fp = fingerprint(keys[0]).split()
    assert kind == "ecdsa-sha2-nistp256" and fp.startswith("SHA256:") and not fp.endswith("=")


def test_messages_say_what_to_do(keys: tuple[paramiko.PKey, paramiko.PKey]) -> None:
    unknown = unknown_key_message("web1", "[10.0.0.5]:2222", keys[0], "/kh")
    assert unknown.startswith("web1: unknown SSH host key for [10.0.0.5]:2222 (ecdsa-sha2-nistp256 SHA256:")
    assert "--accept-new-host-keys" in unknown and "/kh" in unknown and "ssh_host_ecdsa_key.pub" in unknown
    changed = changed_key_message("web1", "10.0.0.5", keys[0], keys[1], "/kh")
    assert "has CHANGED" in changed and fingerprint(keys[1]) in changed and fingerprint(keys[0]) in changed
    assert "ssh-keygen -R '10.0.0.5' -f /kh" in changed


def test_append_creates_private_file_once_under_concurrency(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    path = tmp_path / "ssh" / "known_hosts"
    results: list[bool] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(append_known_host(str(path), "[10.0.0.5]:2222", keys[0]))
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    loaded = paramiko.HostKeys(str(path))
    assert loaded.lookup("[10.0.0.5]:2222")["ecdsa-sha2-nistp256"] == keys[0]  # type: ignore[index]


def test_append_keeps_a_file_without_final_newline_valid(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"other {keys[1].get_name()} {keys[1].get_base64()}")  # no newline at the end
    assert append_known_host(str(path), "web1", keys[0])
    loaded = paramiko.HostKeys(str(path))
    assert loaded.lookup("other") is not None and loaded.lookup("web1") is not None


def test_policy_refuses_unknown_keys_unless_told(
    tmp_path: Path, keys: tuple[paramiko.PKey, paramiko.PKey]
) -> None:
    client = paramiko.SSHClient()
    told: list[str] = []
    with pytest.raises(HostKeyError, match="unknown SSH host key"):
        CheckPolicy("web1", str(tmp_path / "kh"), False, told.append).missing_host_key(
            client, "web1", keys[0]
        )
    assert not (tmp_path / "kh").exists()
    CheckPolicy("web1", str(tmp_path / "kh"), True, told.append).missing_host_key(client, "web1", keys[0])
    assert told and "added the SSH host key of web1" in told[0] and fingerprint(keys[0]) in told[0]
    assert client.get_host_keys().lookup("web1") is not None


# --- fan-out -------------------------------------------------------------------------------------------


def test_all_hosts_run_and_errors_stay_per_host() -> None:
    def work(name: str) -> str:
        if name == "b":
            raise HostError("b: broken")
        return name.upper()

    results = fan_out(["a", "b", "c"], str, work, forks=3)
    assert list(results) == ["a", "b", "c"]
    assert results["a"] == "A" and results["c"] == "C" and str(results["b"]) == "b: broken"


def test_forks_bound_the_parallelism() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def work(name: str) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return name

    fan_out([str(i) for i in range(8)], str, work, forks=3)
    assert peak[0] == 3


def test_serial_runs_batches_in_order() -> None:
    started: list[tuple[str, float]] = []
    finished: dict[str, float] = {}

    def work(name: str) -> str:
        started.append((name, time.monotonic()))
        time.sleep(0.05)
        finished[name] = time.monotonic()
        return name

    fan_out(["a", "b", "c", "d", "e"], str, work, forks=10, serial=2)
    start = dict(started)
    assert max(finished["a"], finished["b"]) <= min(start["c"], start["d"])
    assert max(finished["c"], finished["d"]) <= start["e"]


def test_fail_fast_starts_no_more_hosts() -> None:
    ran: list[str] = []

    def work(name: str) -> str:
        ran.append(name)
        if name == "b":
            raise HostError("b: broken")
        return name

    results = fan_out(["a", "b", "c", "d"], str, work, forks=1, fail_fast=True)
    assert ran == ["a", "b"]
    assert str(results["c"]) == "c: not started: b failed and --fail-fast is set"
    rolling = fan_out(["a", "b", "c", "d"], str, work, forks=4, serial=2, fail_fast=True)
    assert "not started" in str(rolling["c"]) and "not started" in str(rolling["d"])


def test_without_fail_fast_a_failed_batch_does_not_stop_the_rollout() -> None:
    def work(name: str) -> str:
        if name == "a":
            raise HostError("a: broken")
        return name

    assert fan_out(["a", "b", "c"], str, work, forks=2, serial=1)["c"] == "c"


def test_broken_connections_are_host_errors_but_bugs_propagate() -> None:
    def work(name: str) -> str:
        if name == "ssh":
            raise paramiko.SSHException("Server connection dropped")
        if name == "sock":
            raise ConnectionResetError(104, "Connection reset by peer")
        if name == "bug":
            raise KeyError("oops")
        return name

    results = fan_out(["ok", "ssh", "sock"], str, work, forks=3)
    broke = "the connection to the host broke (Server connection dropped); re-run to converge"
    assert str(results["ssh"]) == f"ssh: {broke}"
    assert "Connection reset by peer" in str(results["sock"])
    with pytest.raises(KeyError):
        fan_out(["bug", "ok"], str, work, forks=2)


def test_input_errors_are_results_too() -> None:
    def work(name: str) -> str:
        raise InputError("bad")

    assert isinstance(fan_out(["a"], str, work, forks=1)["a"], InputError)
