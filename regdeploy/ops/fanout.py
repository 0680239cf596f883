"""Run one function per host, ``forks`` at a time; each host yields a result or its error.

One host's failure does not stop the others, unless ``fail_fast``: then hosts not yet started are
reported as not started, and the ones already running finish (stopping them half way would leave
exactly the partial state regdeploy avoids). ``serial`` rolls through the hosts in batches of that
size, a batch starting only when the previous one has finished (Ansible's ``serial``).

A connection that breaks under a host (SSH dropped, engine socket gone) is that host's error, not
a crash of the run: the lower layers raise such errors from many places (docker-py, paramiko, the
socket), so they are turned into one line here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from regdeploy.errors import HostError, RegdeployError

T = TypeVar("T")
H = TypeVar("H")


def _connection_error(exc: BaseException) -> str | None:
    """A one-line reason if *exc* means a connection broke, else None (a bug: let it propagate)."""
    import sys

    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError, EOFError]
    # Only modules already loaded can have raised: importing them here would cost for nothing.
    if "paramiko" in sys.modules:
        kinds.append(sys.modules["paramiko"].SSHException)
    if "requests" in sys.modules:
        kinds.append(sys.modules["requests"].exceptions.ConnectionError)
    if not isinstance(exc, tuple(kinds)):
        return None
    text = " ".join(str(exc).split())[:200]
    return text or type(exc).__name__


class _NotStarted(HostError):
    """A host skipped because --fail-fast stopped the run."""


def fan_out(
    items: Sequence[H],
    key: Callable[[H], str],
    func: Callable[[H], T],
    forks: int,
    *,
    serial: int | None = None,
    fail_fast: bool = False,
) -> dict[str, T | RegdeployError]:
    """Every host's result or expected error, in input order. Unexpected errors propagate (bugs)."""
    first_failure: list[str] = []
    lock = threading.Lock()

    def guarded(item: H) -> T | RegdeployError:
        name = key(item)
        with lock:
            if fail_fast and first_failure:
                return _NotStarted(f"{name}: not started: {first_failure[0]} failed and --fail-fast is set")
        try:
            return func(item)
        except RegdeployError as exc:
            failed: RegdeployError = exc
        except Exception as exc:
            reason = _connection_error(exc)
            if reason is None:
                raise
            failed = HostError(f"{name}: the connection to the host broke ({reason}); re-run to converge")
        with lock:
            first_failure.append(name)
        return failed

    size = serial if serial else max(len(items), 1)
    results: dict[str, T | RegdeployError] = {}
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        workers = min(forks, len(batch))
        if workers <= 1:
            outcomes = [guarded(item) for item in batch]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                outcomes = list(pool.map(guarded, batch))
        results.update({key(item): outcome for item, outcome in zip(batch, outcomes, strict=True)})
    return results
