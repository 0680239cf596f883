"""The runner's order, blocking, parallel pushes, masking and cleanup, with fake checks."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

import regdeploy.transport
from regdeploy.materials.secrets import Masker
from regdeploy.verify import runner
from regdeploy.verify.checks import select_checks
from regdeploy.verify.context import Pushed, VerifyContext
from regdeploy.verify.model import CheckFailed

PASSWORD = "s3cret-password-value"


class FakeTransport:
    address = "127.0.0.1"
    closed = False

    def close(self) -> None:
        self.closed = True


def _job() -> SimpleNamespace:
    user = SimpleNamespace(name="alice", disabled=False)
    spec = SimpleNamespace(port=5000, auth=SimpleNamespace(users=(user,), builtin_token=None), proxies=(),
                           storage=SimpleNamespace(s3=None), cluster_view=None, serves=True)
    return SimpleNamespace(
        name="reg",
        vars={"ansible_connection": "local"},
        spec=spec,
        materials=SimpleNamespace(tls=None, token=None, passwords={"alice": PASSWORD}),
    )


@pytest.fixture
def fakes(monkeypatch):
    """Every check passes unless the test says otherwise; calls are recorded in order."""
    calls: list[str] = []
    transport = FakeTransport()

    def passing(name: str):
        def run(ctx: VerifyContext) -> str:
            calls.append(name)
            return f"{name} ok"

        return run

    checks = {name: passing(name) for name in runner.RUN}
    monkeypatch.setattr(runner, "RUN", checks)
    monkeypatch.setattr(regdeploy.transport, "open_transport", lambda name, host_vars: transport)
    monkeypatch.setattr(runner.engine, "prepare", lambda ctx: calls.append("prepare") or "prepared")
    monkeypatch.setattr(runner.notifications, "before_pushes", lambda ctx: calls.append("before_pushes"))
    return SimpleNamespace(checks=checks, calls=calls, transport=transport)


def _run(names=(), masker=None):
    return runner.verify_host(_job(), select_checks(list(names)), masker or Masker())  # type: ignore[arg-type]


def _pusher(name: str, delay: float = 0.0):
    def run(ctx: VerifyContext) -> str:
        time.sleep(delay)
        ctx.add_pushed(Pushed(name, f"{name}-tag", f"sha256:{name}"))
        return f"{name} pushed"

    return run


def test_all_pass_in_order_and_cleanup_runs_last(fakes):
    fakes.checks["engine"] = _pusher("engine")
    fakes.checks["api"] = _pusher("api")
    report = _run()
    assert report.ok
    # Every check but the opt-in persistence and those of what the host lacks (S3, a cluster,
    # proxies), cleanup last.
    assert [c.name for c in report.checks] == [
        "tcp", "tls", "auth", "engine", "api", "catalog", "notifications", "cleanup"
    ]
    assert fakes.calls[-1] == "cleanup" and "prepare" in fakes.calls
    assert fakes.calls.index("before_pushes") < fakes.calls.index("catalog")
    assert fakes.transport.closed


def test_a_failure_blocks_what_builds_on_it_naming_the_root_cause(fakes):
    def tls_fails(ctx):
        raise CheckFailed("certificate verify failed: Hostname mismatch")

    fakes.checks["tls"] = tls_fails
    report = _run()
    results = {c.name: c for c in report.checks}
    assert not report.ok
    assert results["tls"].status == "fail"
    for name in ("auth", "engine", "api"):
        assert (results[name].status, results[name].detail) == ("blocked", "not run: tls failed")
    assert results["catalog"].detail == "not run: nothing was pushed (tls failed)"
    assert results["notifications"].detail == "not run: nothing was pushed (tls failed)"
    assert "auth" not in fakes.calls and "api" not in fakes.calls
    assert results["cleanup"].status == "pass"  # it always runs


def test_one_push_is_enough_for_the_checks_that_need_a_pushed_image(fakes):
    def engine_fails(ctx):
        raise CheckFailed("push refused: unauthorized")

    fakes.checks["engine"] = engine_fails
    fakes.checks["api"] = _pusher("api")
    results = {c.name: c for c in _run().checks}
    assert results["engine"].status == "fail"
    assert results["catalog"].status == results["notifications"].status == "pass"


def test_catalog_waits_for_the_pushes_and_does_not_count_the_wait(fakes):
    seen: list[list[str]] = []

    def catalog(ctx):
        ctx.wait_for_pushes("catalog")
        seen.append(sorted(p.via for p in ctx.pushed))
        return "listed"

    fakes.checks["engine"] = _pusher("engine", delay=0.3)
    fakes.checks["api"] = _pusher("api", delay=0.1)
    fakes.checks["catalog"] = catalog
    results = {c.name: c for c in _run().checks}
    assert seen == [["api", "engine"]]
    assert results["catalog"].seconds < 0.1 <= results["engine"].seconds


def test_details_are_masked(fakes):
    masker = Masker()
    masker.add(PASSWORD)

    def auth_leaks(ctx):
        raise CheckFailed(f"refused {ctx.target.user}:{ctx.target.password}")

    fakes.checks["auth"] = auth_leaks
    report = _run(["auth"], masker)
    assert [c.detail for c in report.checks if c.name == "auth"] == ["refused alice:********"]


def test_a_bug_propagates_after_cleanup(fakes):
    def broken(ctx):
        ctx.add_pushed(Pushed("api", "t", "sha256:x"))
        raise RuntimeError("bug")

    fakes.checks["api"] = broken
    with pytest.raises(RuntimeError, match="bug"):
        _run(["api"])
    assert fakes.calls[-1] == "cleanup" and fakes.transport.closed
