"""verify/report.py: how results are shown, as JSON and as a table (pure)."""

from __future__ import annotations

from regdeploy.verify.model import CheckResult
from regdeploy.verify.report import payload, table
from regdeploy.verify.runner import HostReport


def _report() -> HostReport:
    return HostReport(
        "reg1",
        (
            CheckResult("tcp", "pass", 0.0012345, "127.0.0.1:5000 accepts connections"),
            CheckResult("tls", "fail", 0.01, "certificate verify failed: Hostname mismatch"),
            CheckResult("auth", "blocked", 0.0, "not run: tls failed"),
            CheckResult("notifications", "skip", 0.0, "no notification endpoints configured"),
        ),
    )


def test_json_has_the_design_shape():
    out = payload({"reg1": _report(), "reg2": "reg2: ansible_connection 'ssh' is not supported"})
    assert out == {
        "ok": False,
        "hosts": {
            "reg1": {
                "ok": False,
                "checks": [
                    {
                        "name": "tcp",
                        "ok": True,
                        "seconds": 0.001,
                        "detail": "127.0.0.1:5000 accepts connections",
                    },
                    {
                        "name": "tls",
                        "ok": False,
                        "seconds": 0.01,
                        "detail": "certificate verify failed: Hostname mismatch",
                    },
                    {"name": "auth", "ok": False, "seconds": 0.0, "detail": "not run: tls failed"},
                    {
                        "name": "notifications",
                        "ok": True,
                        "seconds": 0.0,
                        "detail": "no notification endpoints configured",
                    },
                ],
                "error": None,
            },
            "reg2": {"ok": False, "checks": [], "error": "reg2: ansible_connection 'ssh' is not supported"},
        },
    }


def test_skipped_checks_count_as_ok():
    report = HostReport("r", (CheckResult("tcp", "pass", 0.1, "x"), CheckResult("tls", "skip", 0.0, "plain")))
    assert report.ok and payload({"r": report})["ok"] is True
    assert payload({})["ok"] is False  # no host matched: nothing was proven


def test_table():
    text = table({"reg1": _report()})
    assert text.splitlines() == [
        "reg1: FAILED",
        "  PASS  tcp             0.001s  127.0.0.1:5000 accepts connections",
        "  FAIL  tls             0.010s  certificate verify failed: Hostname mismatch",
        "  ----  auth            0.000s  not run: tls failed",
        "  SKIP  notifications   0.000s  no notification endpoints configured",
        "1 host: 0 ok, 1 failed",
    ]
