"""Which tags of a repository a retention rule deletes, and why each other one stays (pure).

Deleting goes by manifest digest, and the registry then drops every tag of that digest: so a
digest is deleted only when every one of its tags is to go, and never when a kept tag's image
index lists it. Age is the image config's ``created`` time; a tag whose age is unknown (no such
field, or a reproducible-build placeholder before 1980) is never ranked among the newest nor
proven old: where the rule needs its age (``keep_last``, ``older_than``) it stays.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from regdeploy.spec.retention import RetentionRule

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TagInfo:
    tag: str
    digest: str  # the manifest's
    created: datetime | None  # aware (UTC); None when unknown
    children: tuple[str, ...] = ()  # an index's manifests
    unknown_why: str = "its image config has no created time"  # when created is None


@dataclass(frozen=True)
class Deletion:
    tag: str
    digest: str
    reason: str


@dataclass(frozen=True)
class Kept:
    tag: str
    reason: str


@dataclass(frozen=True)
class Decision:
    repository: str
    rule: int | None  # index into the rules; None: no rule matches (nothing is deleted)
    deleted: tuple[Deletion, ...]
    kept: tuple[Kept, ...]

    @property
    def digests(self) -> tuple[str, ...]:
        """The manifests to delete, once each, in the order of their first tag."""
        return tuple(dict.fromkeys(d.digest for d in self.deleted))


def matching_rule(repository: str, rules: Sequence[RetentionRule]) -> int | None:
    """The index of the first rule whose glob matches *repository*."""
    return next((i for i, r in enumerate(rules) if fnmatch.fnmatchcase(repository, r.repositories)), None)


def decide(repository: str, tags: Sequence[TagInfo], rules: Sequence[RetentionRule],
           now: datetime) -> Decision:  # fmt: skip
    index = matching_rule(repository, rules)
    if index is None:
        return Decision(repository, None, (), tuple(Kept(t.tag, "no retention rule matches") for t in tags))
    rule = rules[index]
    ranked = _newest_first([t for t in tags if t.created is not None])
    rank = {t.tag: n for n, t in enumerate(ranked, 1)}
    reasons: dict[str, str] = {}  # tag -> why it stays, for the tags the rule itself keeps
    doomed: dict[str, str] = {}  # tag -> why it goes
    for t in tags:
        why_kept = _kept_by_rule(t, rule, rank.get(t.tag), now)
        if why_kept is not None:
            reasons[t.tag] = why_kept
        else:
            doomed[t.tag] = _why_deleted(t, rule, rank.get(t.tag), now)
    # A digest stays if any of its tags stays, or if a kept tag's index lists it.
    by_tag = {t.tag: t for t in tags}
    keeper: dict[str, str] = {}
    for t in tags:
        if t.tag in reasons:
            keeper.setdefault(t.digest, t.tag)
    for t in tags:
        if t.tag in reasons:
            for child in t.children:
                keeper.setdefault(child, t.tag)
    for tag in list(doomed):
        t = by_tag[tag]
        holder = keeper.get(t.digest)
        if holder is None:
            continue
        del doomed[tag]
        same = by_tag[holder].digest == t.digest
        reasons[tag] = (f"same manifest as kept tag {holder!r}" if same
                        else f"its manifest is in the index of kept tag {holder!r}")  # fmt: skip
    order = sorted(tags, key=lambda t: (rank.get(t.tag, len(tags) + 1), _natural(t.tag)))
    return Decision(
        repository,
        index,
        tuple(Deletion(t.tag, t.digest, doomed[t.tag]) for t in order if t.tag in doomed),
        tuple(Kept(t.tag, reasons[t.tag]) for t in order if t.tag in reasons),
    )


def _kept_by_rule(t: TagInfo, rule: RetentionRule, rank: int | None, now: datetime) -> str | None:
    pattern = next((p for p in rule.keep_tags if fnmatch.fnmatchcase(t.tag, p)), None)
    if pattern is not None:
        return f"matches keep_tags {pattern!r}"
    if t.created is None and (rule.keep_last is not None or rule.older_than is not None):
        return f"age unknown ({t.unknown_why}): never ranked or aged out"
    if rule.keep_last is not None and rank is not None and rank <= rule.keep_last:
        return f"among the {rule.keep_last} newest (#{rank}, created {_when(t.created)})"
    if rule.older_than_seconds is not None and t.created is not None:
        age = (now - t.created).total_seconds()
        if age <= rule.older_than_seconds:
            return f"not older than {rule.older_than} (created {_when(t.created)})"
    return None


def _why_deleted(t: TagInfo, rule: RetentionRule, rank: int | None, now: datetime) -> str:
    parts = []
    if rule.keep_last is not None:
        parts.append(f"not among the {rule.keep_last} newest (#{rank}, created {_when(t.created)})")
    if rule.older_than is not None:
        parts.append(f"older than {rule.older_than}" + ("" if parts else f" (created {_when(t.created)})"))
    if rule.keep_tags:
        parts.append("matches no keep_tags")
    return ", ".join(parts)


def _when(created: datetime | None) -> str:
    return "unknown" if created is None else created.strftime("%Y-%m-%dT%H:%M:%SZ")


def _newest_first(tags: list[TagInfo]) -> list[TagInfo]:
    # Ties (one image under several tags, or pushes in the same second): the higher tag name first,
    # digit runs compared as numbers (v1.10 above v1.9), so the order never depends on the API's.
    by_name = sorted(tags, key=lambda t: _natural(t.tag), reverse=True)
    return sorted(by_name, key=lambda t: t.created or _EPOCH, reverse=True)  # stable: ties keep by_name


def _natural(tag: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((k, int(p) if k else p) for k, p in _parts(tag))


def _parts(tag: str) -> list[tuple[int, str]]:
    return [(1, p) if p.isdigit() else (0, p) for p in re.findall(r"\d+|\D+", tag)]
