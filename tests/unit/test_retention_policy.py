"""The retention policy, data-driven: a table of tags (digest, created day) and rules -> what goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from regdeploy.retention.policy import TagInfo, decide
from regdeploy.spec.retention import RetentionRule, age_seconds

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DAY0 = datetime(2026, 1, 1, tzinfo=UTC)


def rule(repositories: str = "team/*", keep_last: int | None = None, keep_tags: tuple[str, ...] = (),
         older_than: str | None = None) -> RetentionRule:  # fmt: skip
    seconds = age_seconds(older_than) if older_than else None
    return RetentionRule(repositories, keep_last, keep_tags, older_than, seconds)


@dataclass(frozen=True)
class Case:
    name: str
    tags: list[tuple[str, str, int | None]]  # tag, digest, created as days after DAY0 (None: unknown)
    rules: list[RetentionRule]
    deleted: list[str]  # tags, in report order (newest first)
    repository: str = "team/app"
    children: dict[str, tuple[str, ...]] = field(default_factory=dict)  # digest -> an index's manifests
    reasons: dict[str, str] = field(default_factory=dict)  # tag -> a part of its reason


def versions(n: int) -> list[tuple[str, str, int | None]]:
    return [(f"v{i:02d}", f"sha256:{i:02d}", i) for i in range(1, n + 1)]


CASES = [
    Case("the issue: 3 newest plus latest",
         [("latest", "sha256:00", 0), *versions(11)],
         [rule(keep_last=3, keep_tags=("latest",))],
         [f"v{i:02d}" for i in range(8, 0, -1)],
         reasons={"latest": "matches keep_tags 'latest'", "v11": "among the 3 newest (#1, created 2026-01-12",
                  "v08": "not among the 3 newest (#4, created 2026-01-09T00:00:00Z), matches no keep_tags"}),
    Case("keep_last alone", versions(5), [rule(keep_last=2)], ["v03", "v02", "v01"]),
    Case("keep_last above the count deletes nothing", versions(3), [rule(keep_last=10)], []),
    Case("keep_tags alone deletes every other tag, whatever its age",
         [("v1", "sha256:a", 1), ("main", "sha256:b", 2), ("v2", "sha256:c", None)],
         [rule(keep_tags=("v*",))], ["main"], reasons={"main": "matches no keep_tags"}),
    Case("keep_tags globs",
         [("v1.0", "sha256:a", 1), ("v1.1", "sha256:b", 2), ("pr-7", "sha256:c", 3), ("pr-8", "sha256:d", 4)],
         [rule(keep_last=1, keep_tags=("v1.*",))], ["pr-7"]),
    Case("older_than spares the young",
         # NOW is day 59: day 20 is 39 days old, day 40 is 19 days old.
         [("a", "sha256:a", 10), ("b", "sha256:b", 20), ("c", "sha256:c", 40), ("d", "sha256:d", 50)],
         [rule(keep_last=1, older_than="30d")], ["b", "a"],
         reasons={"c": "not older than 30d",
                  "b": "not among the 1 newest (#3, created 2026-01-21T00:00:00Z), older than 30d"}),
    Case("older_than with keep_tags only",
         [("latest", "sha256:l", 1), ("a", "sha256:a", 1), ("b", "sha256:b", 55)],
         [rule(keep_tags=("latest",), older_than="4w")], ["a"],
         reasons={"a": "older than 4w (created 2026-01-02T00:00:00Z), matches no keep_tags"}),
    Case("a digest shared with a kept tag stays",
         [("v1", "sha256:1", 1), ("v2", "sha256:2", 2), ("stable", "sha256:2", 2)],
         [rule(keep_last=1)], ["v1"], reasons={"stable": "same manifest as kept tag 'v2'"}),
    Case("a digest goes once every one of its tags goes",
         [("v1", "sha256:1", 1), ("old", "sha256:1", 1), ("v2", "sha256:2", 2)],
         [rule(keep_last=1)], ["v1", "old"]),
    Case("a manifest in a kept index stays",
         [("app", "sha256:index", 5), ("app-amd64", "sha256:amd64", 4), ("v0", "sha256:0", 1)],
         [rule(keep_last=1)], ["v0"], children={"sha256:index": ("sha256:amd64", "sha256:arm64")},
         reasons={"app-amd64": "its manifest is in the index of kept tag 'app'"}),
    Case("unknown age: kept when the rule ranks or ages",
         [("mystery", "sha256:m", None), *versions(3)],
         [rule(keep_last=1)], ["v02", "v01"],
         reasons={"mystery": "age unknown (its image config has no created time)"}),
    Case("unknown age and older_than", [("mystery", "sha256:m", None), ("a", "sha256:a", 1)],
         [rule(keep_tags=("x",), older_than="1d")], ["a"]),
    Case("ties: the higher tag wins, digits as numbers",
         [("v1.9", "sha256:9", 3), ("v1.10", "sha256:10", 3), ("v1.8", "sha256:8", 3)],
         [rule(keep_last=1)], ["v1.9", "v1.8"]),
    Case("no rule matches: nothing goes", versions(4), [rule("other/*", keep_last=1)], [],
         reasons={"v01": "no retention rule matches"}),
    Case("the first matching rule applies",
         versions(4), [rule("team/app", keep_last=3), rule("team/*", keep_last=1)], ["v01"]),
    Case("a glob's * crosses /", versions(2), [rule("team/*", keep_last=1)], ["v01"], repository="team/a/b"),
    Case("an empty repository", [], [rule(keep_last=1)], []),
]  # fmt: skip


def infos(case: Case) -> list[TagInfo]:
    def when(day: int | None) -> datetime | None:
        return None if day is None else DAY0 + timedelta(days=day)

    return [TagInfo(tag, digest, when(day), case.children.get(digest, ())) for tag, digest, day in case.tags]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_policy(case: Case) -> None:
    decision = decide(case.repository, infos(case), case.rules, NOW)
    assert [d.tag for d in decision.deleted] == case.deleted
    assert {k.tag for k in decision.kept} | {d.tag for d in decision.deleted} == {t for t, _, _ in case.tags}
    reasons = {d.tag: d.reason for d in decision.deleted} | {k.tag: k.reason for k in decision.kept}
    for tag, part in case.reasons.items():
        assert part in reasons[tag], (tag, reasons[tag])
    # Never a digest that a kept tag, or a kept tag's index, uses.
    kept = {t.digest for t in infos(case) if t.tag in {k.tag for k in decision.kept}}
    kept |= {c for t in infos(case) if t.digest in kept for c in t.children}
    assert not set(decision.digests) & kept


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_second_run_deletes_nothing(case: Case) -> None:
    first = decide(case.repository, infos(case), case.rules, NOW)
    left = [t for t in infos(case) if t.digest not in first.digests]
    assert decide(case.repository, left, case.rules, NOW).deleted == ()


def test_digests_are_listed_once_in_report_order() -> None:
    tags = [TagInfo("a", "sha256:1", DAY0), TagInfo("b", "sha256:1", DAY0), TagInfo("c", "sha256:2", DAY0)]
    decision = decide("r", tags, [rule("r", keep_tags=("z",))], NOW)
    assert decision.digests == ("sha256:2", "sha256:1")
    assert decision.rule == 0
