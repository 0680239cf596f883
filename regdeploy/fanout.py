"""Run one function per host, ``forks`` at a time; each host yields a result or its error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from regdeploy.errors import RegdeployError

T = TypeVar("T")
H = TypeVar("H")


def fan_out(
    items: Sequence[H], key: Callable[[H], str], func: Callable[[H], T], forks: int
) -> dict[str, T | RegdeployError]:
    """Every host's result or expected error, in input order. Unexpected errors propagate (bugs)."""

    def guarded(item: H) -> T | RegdeployError:
        try:
            return func(item)
        except RegdeployError as exc:
            return exc

    if len(items) <= 1 or forks == 1:
        return {key(item): guarded(item) for item in items}
    with ThreadPoolExecutor(max_workers=min(forks, len(items))) as pool:
        results = list(pool.map(guarded, items))
    return {key(item): result for item, result in zip(items, results, strict=True)}
