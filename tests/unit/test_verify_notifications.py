"""Reading the registry's delivery counters and judging them (pure)."""

from __future__ import annotations

from regdeploy.verify.notifications import Metrics, is_loopback, judge, parse_debug_vars

TOKEN = "Bearer very-secret-token"


def _vars(**metrics: int) -> dict:
    return {
        "cmdline": ["/bin/registry"],
        "registry": {
            "notifications": {
                "endpoints": [
                    {
                        "name": "hook",
                        "url": "http://172.17.0.1:9/hook?key=also-secret",
                        "Headers": {"Authorization": [TOKEN]},
                        "Metrics": {
                            "Pending": 0,
                            "Events": 0,
                            "Successes": 0,
                            "Failures": 0,
                            "Errors": 0,
                            "Statuses": {"500 Internal Server Error": metrics.pop("s500", 0)},
                            **{k.capitalize(): v for k, v in metrics.items()},
                        },
                    },
                    {"name": "other"},
                ]
            }
        },
    }


def test_parse_takes_names_and_counters_only():
    parsed = parse_debug_vars(_vars(events=3, successes=2, pending=1))
    assert parsed == {
        "hook": Metrics(3, 2, 0, 0, 1, {"500 Internal Server Error": 0}),
        "other": Metrics(),
    }
    assert "secret" not in repr(parsed) and "172.17" not in repr(parsed)


def test_parse_tolerates_missing_parts():
    assert parse_debug_vars({}) == {}
    assert parse_debug_vars(None) == {}
    assert parse_debug_vars({"registry": {"notifications": None}}) == {}


def test_all_delivered():
    v = judge("hook", Metrics(5, 5), Metrics(9, 9), final=False)
    assert (v.done, v.ok, v.text) == (True, True, "hook: delivered 4 of 4 events")


def test_still_pending_waits_then_passes_with_what_was_delivered():
    assert not judge("hook", Metrics(), Metrics(4, 2, pending=2), final=False).done
    v = judge("hook", Metrics(), Metrics(4, 2, pending=2), final=True)
    assert (v.ok, v.text) == (True, "hook: delivered 2 of 4 events (2 pending)")


def test_refused_deliveries_fail_at_once_with_the_statuses():
    before = Metrics(1, 1, statuses={"200 OK": 1})
    after = Metrics(7, 1, failures=3, pending=6, statuses={"200 OK": 1, "500 Internal Server Error": 3})
    v = judge("hook", before, after, final=False)
    assert (v.done, v.ok) == (True, False)
    assert (
        v.text
        == "hook: refused 3 deliveries (answered 500 Internal Server Error x3); delivered 0 of 6 events"
    )


def test_unreachable_endpoint():
    v = judge("hook", Metrics(), Metrics(2, errors=2, pending=2), final=False)
    assert v.text == "hook: 2 delivery errors (unreachable or timed out); delivered 0 of 2 events"


def test_nothing_queued_or_nothing_delivered_fails_in_the_end():
    assert judge("hook", Metrics(), Metrics(), final=True).text == (
        "hook: the registry queued no event for this run's pushes"
    )
    v = judge("hook", Metrics(), Metrics(3, pending=3), final=True)
    assert (v.ok, v.text) == (False, "hook: none of 3 events delivered yet (3 pending)")


def test_only_loopback_debug_ports_are_read():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.5") and not is_loopback("reg-us.example")
