"""The access list: ordered entries, the first that matches decides, nothing matches means nothing.

This is cesanta/docker_auth's model. An entry's ``account`` is ``*`` (any signed-in account), ``""``
(the anonymous account, and only it) or a name or glob; its ``name`` is a glob over the repository
name in which ``${account}`` stands for the requesting account. Globs are ``fnmatch`` globs,
case-sensitive, and ``*`` crosses ``/`` (``team/*`` matches ``team/a/b``), as in docker_auth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from regdeploy.tokens.scope import REPOSITORY, Scope

ACCOUNT_VARIABLE = "${account}"
ANY_ACTION = "*"
ANONYMOUS = ""


@dataclass(frozen=True)
class AclEntry:
    account: str
    name: str
    actions: tuple[str, ...]
    type: str = REPOSITORY


def _glob_literal(text: str) -> str:
    # An account is data, not a pattern: "a*" or "[x]" in a user or claim value must not widen the
    # entry it is substituted into. Bracketing each metacharacter makes fnmatch take it literally.
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def account_matches(pattern: str, account: str) -> bool:
    if account == ANONYMOUS:
        return pattern == ANONYMOUS
    if pattern == ANONYMOUS:
        return False
    return pattern == "*" or fnmatchcase(account, pattern)


def name_matches(pattern: str, account: str, name: str) -> bool:
    if ACCOUNT_VARIABLE in pattern:
        if account == ANONYMOUS:
            return False  # the anonymous account has no namespace of its own
        pattern = pattern.replace(ACCOUNT_VARIABLE, _glob_literal(account))
    return fnmatchcase(name, pattern)


def first_match(entries: Iterable[AclEntry], account: str, scope: Scope) -> AclEntry | None:
    for entry in entries:
        if (
            entry.type == scope.type
            and account_matches(entry.account, account)
            and name_matches(entry.name, account, scope.name)
        ):
            return entry
    return None


def granted_actions(entry: AclEntry | None, requested: Sequence[str]) -> tuple[str, ...]:
    """The requested actions the entry allows, in the order asked (``*`` in the entry: all of them)."""
    if entry is None:
        return ()
    if ANY_ACTION in entry.actions:
        return tuple(requested)
    return tuple(a for a in requested if a in entry.actions)


def authorize(entries: Sequence[AclEntry], account: str, scopes: Iterable[Scope]) -> list[Scope]:
    """Each requested scope with the actions granted to *account*; a denied scope keeps its place
    with no actions, so the token says plainly what was refused (the registry then answers 401)."""
    return [
        Scope(s.type, s.name, granted_actions(first_match(entries, account, s), s.actions)) for s in scopes
    ]
