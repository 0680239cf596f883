"""Registry users kept in the state directory, beside the inventory's own.

``users add`` records extra users in ``users.json`` (names only; each password under
``secrets/users/NAME``, 0600). Every command that builds a host's materials merges them into its spec
through :func:`with_state_users`, so htpasswd always holds them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from regdeploy.errors import InputError
from regdeploy.materials.secrets import SecretRef
from regdeploy.materials.state import StateStore
from regdeploy.spec.registry import RegistrySpec, UserSpec

USERS_KEY = "users.json"


def state_user_names(state: StateStore) -> list[str]:
    raw = state.read(USERS_KEY)
    if not raw:
        return []
    try:
        names = json.loads(raw)
    except ValueError:
        raise InputError(f"{state.root / USERS_KEY}: not valid JSON") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{state.root / USERS_KEY}: expected a list of user names")
    return names


def save_state_user_names(state: StateStore, names: Sequence[str]) -> None:
    state.write(USERS_KEY, (json.dumps(sorted(set(names)), indent=1) + "\n").encode())


def password_key(name: str) -> str:
    """The generated secret holding a state user's password (``secrets/`` + this in the state store)."""
    return f"users/{name}"


def with_state_users(spec: RegistrySpec, names: Sequence[str]) -> RegistrySpec:
    """The spec with the state directory's users appended (the inventory's own take precedence)."""
    known = {u.name for u in spec.auth.users}
    extra = tuple(UserSpec(n, SecretRef("generated", password_key(n))) for n in names if n not in known)
    if not extra:
        return spec
    return dataclasses.replace(spec, auth=dataclasses.replace(spec.auth, users=spec.auth.users + extra))
