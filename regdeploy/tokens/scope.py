"""Scopes as clients request them (``repository:team/app:pull,push``) and as tokens grant them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# A scope's resource type may carry a class: ``repository(plugin):vieux/sshfs:pull`` (docker plugins).
# The class does not change what is allowed, so it is dropped and the type kept.
REPOSITORY = "repository"
REGISTRY = "registry"
KNOWN_TYPES = (REPOSITORY, REGISTRY)
_MAX_SCOPES = 32  # a real client asks for one to three per token; more is noise or an attack


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scope(text: str) -> Scope | None:
    """One scope, or None when it is not ``TYPE:NAME:ACTIONS``.

    The type ends at the first ``:`` and the actions start after the last one, so a name keeps any
    ``:`` it has (distribution's grammar allows none, but a client may send a host:port form).
    """
    kind, sep, rest = text.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    kind = kind.split("(", 1)[0] if kind.endswith(")") and "(" in kind else kind
    wanted: list[str] = []
    for action in actions.split(","):
        action = action.strip()
        if action and action not in wanted:
            wanted.append(action)
    return Scope(kind, name, tuple(wanted))


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """All scopes in ``scope`` parameters (each may hold several, space-separated, as in OAuth2).

    Unparseable items are dropped (they get nothing); the same type and name asked twice, as docker
    does with ``pull`` and ``pull,push``, is merged into one scope with the union of the actions.
    """
    merged: dict[tuple[str, str], list[str]] = {}
    for value in values:
        for item in value.split():
            scope = parse_scope(item)
            if scope is None:
                continue
            key = (scope.type, scope.name)
            if key not in merged and len(merged) >= _MAX_SCOPES:
                continue
            actions = merged.setdefault(key, [])
            actions.extend(a for a in scope.actions if a not in actions)
    return [Scope(kind, name, tuple(actions)) for (kind, name), actions in merged.items()]
