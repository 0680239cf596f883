"""ops/fanout.py: the fan-out rules (forks, --serial, --fail-fast), without a network."""

from __future__ import annotations

import threading
import time

import paramiko
import pytest

from regdeploy.errors import HostError, InputError
from regdeploy.ops.fanout import fan_out


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
