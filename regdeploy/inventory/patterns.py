"""Ansible host patterns, as ``--limit`` takes them.

``all`` / ``*``, host and group names, ``a:b`` or ``a,b`` (union), ``a:&b`` (intersection),
``a:!b`` (exclusion), shell wildcards and ``~regex`` matched against host and group names, and
subscripts ``group[0]``, ``group[1:3]`` (inclusive, as Ansible). Like Ansible: commas, if any,
are the only separator; unions apply first, then intersections, then exclusions; a pattern with
only ``&``/``!`` parts starts from all hosts; a plain name that is a host means just that host.

Stricter than Ansible (which warns and carries on): a part that matches no host and no group
name is an error, because a typo in ``all:!prod-db`` would otherwise deploy to prod-db.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence

from regdeploy.errors import InventoryError

_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SUBSCRIPT = re.compile(r"^(?P<base>.+)\[(?:(?P<index>-?[0-9]+)|(?P<start>[0-9]+)[:-](?P<end>[0-9]+)?)\]$")
_SPECIAL = (".", "?", "*", "[")


def split_pattern(pattern: str) -> list[str]:
    parts = pattern.split(",") if "," in pattern else _TERMS.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def select_names(
    pattern: str | None, hosts: Sequence[str], groups: Mapping[str, Sequence[str]], source: str
) -> list[str]:
    """Names of the hosts ``pattern`` selects, in the order of ``hosts``."""
    if pattern is None:
        if not hosts:
            raise InventoryError(f"{source}: the inventory has no hosts")
        return list(hosts)
    terms = split_pattern(pattern)
    if not terms:
        raise InventoryError(f"--limit {pattern!r}: empty pattern")
    unions = [t for t in terms if t[0] not in "&!"] or ["all"]
    ordered = unions + [t for t in terms if t[0] == "&"] + [t for t in terms if t[0] == "!"]
    selected: set[str] = set()
    for term in ordered:
        body = term[1:] if term[0] in "&!" else term
        matched = _match(body, hosts, groups, pattern)
        if matched is None:
            if len(ordered) == 1:
                break  # reported below with the plain "matches no host" message
            raise InventoryError(f"--limit {pattern!r}: {body!r} matches no host or group in {source}")
        if term[0] == "&":
            selected &= matched
        elif term[0] == "!":
            selected -= matched
        else:
            selected |= matched
    if not selected:
        raise InventoryError(f"--limit {pattern!r}: matches no host in {source}")
    return [h for h in hosts if h in selected]


def _match(
    body: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]], pattern: str
) -> set[str] | None:
    """Hosts named by one pattern part; None when it names neither a host nor a group."""
    if body in hosts:
        return {body}
    base, subscript = _split_subscript(body)
    regex = _compile(base, pattern)
    found_name = False
    matched: list[str] = []
    matching_groups = [g for g in groups if regex.match(g)]
    for group in matching_groups:
        found_name = True
        matched.extend(groups[group])
    # Like Ansible: a name that is a group means the group, unless it is a wildcard or regex.
    if not matching_groups or base.startswith("~") or any(c in base for c in _SPECIAL):
        for host in hosts:
            if regex.match(host):
                found_name = True
                matched.append(host)
    if not found_name:
        return None
    wanted = set(matched)
    return set(_apply_subscript([h for h in hosts if h in wanted], subscript))


def _compile(base: str, pattern: str) -> re.Pattern[str]:
    if not base.startswith("~"):
        return re.compile(fnmatch.translate(base))
    try:
        return re.compile(base[1:])
    except re.error as exc:
        raise InventoryError(f"--limit {pattern!r}: invalid regular expression {base[1:]!r}: {exc}") from None


def _split_subscript(body: str) -> tuple[str, tuple[int, int | None] | None]:
    if body.startswith("~"):
        return body, None
    match = _SUBSCRIPT.match(body)
    if match is None:
        return body, None
    if match.group("index") is not None:
        return match.group("base"), (int(match.group("index")), None)
    end = match.group("end")
    return match.group("base"), (int(match.group("start")), int(end) if end is not None else -1)


def _apply_subscript(hosts: list[str], subscript: tuple[int, int | None] | None) -> list[str]:
    if subscript is None:
        return hosts
    start, end = subscript
    if end is None:
        return [hosts[start]] if -len(hosts) <= start < len(hosts) else []
    return hosts[start:] if end == -1 else hosts[start : end + 1]
