"""``retention``: which tags ``regdeploy retention`` deletes, per repository glob.

A rule keeps the ``keep_last`` newest tags and every tag matching ``keep_tags``; with ``older_than``
it deletes only tags older than that. The first rule whose ``repositories`` glob matches a
repository applies to it; a repository no rule matches is never touched. A rule must keep
something (``keep_last`` or ``keep_tags``): one that would delete every tag is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from regdeploy.spec import validate as v

_KEYS = ("repositories", "keep_last", "keep_tags", "older_than")
# Repository names are lower-case path components ([a-z0-9] with . _ - separators, joined by /);
# a glob adds * ? and [...] classes. Upper case or spaces can never match anything.
_GLOB_RE = r"[a-z0-9._/*?\[\]!-]+"
_TAG_GLOB_RE = r"[A-Za-z0-9._*?\[\]!-]+"
_AGE_RE = re.compile(r"(\d+)([smhdw])")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_KEEP_LAST = 100_000


@dataclass(frozen=True)
class RetentionRule:
    repositories: str  # an fnmatch glob over the whole name: "team/*" also matches "team/a/b"
    keep_last: int | None = None  # the N newest tags (by their image's created time) stay
    keep_tags: tuple[str, ...] = ()  # globs over tag names: a matching tag is never deleted
    older_than: str | None = None  # "30d": only tags older than this are deleted
    older_than_seconds: int | None = None


def parse_retention(raw: Any, where: v.Where) -> tuple[RetentionRule, ...]:
    rules = tuple(_rule(item, where.child(i)) for i, item in enumerate(v.sequence(raw, where)))
    for i, rule in enumerate(rules):
        earlier = next((j for j, r in enumerate(rules[:i]) if r.repositories == rule.repositories), None)
        if earlier is not None:
            where.child(i).child("repositories").fail(
                f"{rule.repositories!r} is retention[{earlier}]'s already: the first matching rule "
                "applies, so this one never would"
            )
    return rules


def age_seconds(text: str) -> int | None:
    """Seconds of an age such as ``30d``, ``12h`` or ``1w2d`` (s, m, h, d, w); None if not one."""
    if not re.fullmatch(r"(?:\d+[smhdw])+", text):
        return None
    return sum(int(n) * _AGE_UNITS[u] for n, u in _AGE_RE.findall(text))


def _rule(raw: Any, where: v.Where) -> RetentionRule:
    data = v.mapping(raw, where, _KEYS)
    if not data:
        where.fail("must be a mapping with repositories and a keep rule (keep_last or keep_tags)")
    if data.get("repositories") is None:
        where.child("repositories").fail("is required: a glob of repository names, such as 'team/*'")
    repositories = v.string(
        data["repositories"], where.child("repositories"), _GLOB_RE,
        "a glob of lower-case repository names (letters, digits, . _ - /, and * ? [...])",
    )  # fmt: skip
    keep_last = None
    if data.get("keep_last") is not None:
        w = where.child("keep_last")
        if data["keep_last"] == 0 and not isinstance(data["keep_last"], bool):
            w.fail("0 would delete every tag: keep at least 1 (or use keep_tags alone)")
        keep_last = v.integer(data["keep_last"], w, 1, MAX_KEEP_LAST)
    keep_tags = v.string_list(data.get("keep_tags"), where.child("keep_tags"))
    for i, pattern in enumerate(keep_tags):
        v.string(pattern, where.child("keep_tags").child(i), _TAG_GLOB_RE,
                 "a tag name or glob (letters, digits, . _ -, and * ? [...])")  # fmt: skip
    older_than = None
    seconds = None
    if data.get("older_than") is not None:
        w = where.child("older_than")
        older_than = data["older_than"]
        seconds = age_seconds(older_than) if isinstance(older_than, str) else None
        if seconds is None:
            w.fail(f"invalid duration {older_than!r}: a number and a unit s, m, h, d or w (30d, 12h, 1w)")
        if seconds == 0:
            w.fail(f"{older_than!r} is no age at all: remove older_than, or give more than 0")
    if keep_last is None and not keep_tags:
        where.fail(
            "has no keep rule: set keep_last (the N newest tags stay) or keep_tags (tags that always "
            "stay); without one the rule would delete every tag"
            + (" older than " + older_than if older_than else "")
        )
    return RetentionRule(
        repositories=repositories,
        keep_last=keep_last,
        keep_tags=keep_tags,
        older_than=older_than,
        older_than_seconds=seconds,
    )
