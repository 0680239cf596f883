"""Registry users beyond the inventory's, password rotation, and pushing htpasswd alone.

Users normally live in the inventory (``registry.auth.users``). ``users add`` keeps extra users in the
state directory (``materials/users.py``), and every command that renders htpasswd merges them in. The
registry re-reads htpasswd when its mtime changes, so pushing it is the whole change: no restart, no
dropped request.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regdeploy.deploy.plan import Plan
from regdeploy.errors import HostError, InputError, RegdeployError
from regdeploy.materials.htpasswd import MAX_PASSWORD_BYTES
from regdeploy.materials.secrets import Masker
from regdeploy.materials.users import password_key, save_state_user_names, state_user_names
from regdeploy.ops.run import HostJob, Progress, Run, host_error, load_specs, prepare
from regdeploy.spec.registry import USER_NAME_RE
from regdeploy.transport.address import registry_hostport


def login_address(job: HostJob) -> str:
    """The host's registry as ``docker login`` and a Docker config's ``auths`` name it."""
    return registry_hostport(job.name, job.vars, job.spec.port)


def check_name(name: str) -> None:
    if not re.fullmatch(USER_NAME_RE, name):
        raise InputError(
            f"user name {name!r}: letters, digits, _ . @ - only (no ':' or whitespace), at most 64 characters"
        )


def check_password(password: str, source: str) -> str:
    if not password:
        raise InputError(f"{source}: empty password")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InputError(
            f"{source}: password is {len(password.encode())} bytes; bcrypt uses at most {MAX_PASSWORD_BYTES}"
        )
    if "\n" in password or "\r" in password:
        raise InputError(f"{source}: password contains a line break")
    return password


def push_htpasswd(job: HostJob, masker: Masker, progress: Callable[[str, str], None]) -> Plan:
    """Bring one host's htpasswd to the rendered one, and nothing else: no other file, no container."""
    from regdeploy.deploy.apply import apply_plan
    from regdeploy.deploy.facts import gather
    from regdeploy.deploy.layout import users_file
    from regdeploy.deploy.plan import make_plan
    from regdeploy.transport import open_transport

    if job.spec.auth.token is not None and job.spec.auth.builtin_token is None:
        raise HostError(f"{job.name}: users are the external token server's (auth.token.server: external)")
    path = users_file(job.spec)
    transport = open_transport(job.name, job.vars)
    try:
        job = job.on_host(transport.identity())
        facts = gather(transport, job.spec, job.rendered, job.units)
        if facts.container(job.spec.name) is None or facts.paths.get(f"{job.spec.config_dir}/auth") is None:
            raise HostError(f"{job.name}: no registry deployed here yet: run `regdeploy up` first")
        wanted = job.wanted(facts.images)
        full = make_plan(job.spec, job.rendered, facts, wanted)
        plan = Plan(job.name, tuple(c for c in full.changes if c.kind == "file" and c.target == path))
        ca = job.materials.tls.ca_cert if job.materials.tls else None
        apply_plan(
            transport, job.spec, job.rendered, plan, wanted, ca, lambda m: progress(job.name, m), masker.mask,
            obtain_image=lambda ref: ref,  # a files-only plan: no image is ever asked for
        )
        return plan
    except RegdeployError as exc:
        raise host_error(job.name, exc, masker) from None
    finally:
        transport.close()


# --- the commands: list, add, remove, rotate -------------------------------------------------------


@dataclass(frozen=True)
class UsersChanged:
    pushed: dict[str, str | None]  # host -> error; None where htpasswd is up to date
    credentials: dict[str, str]  # passwords regdeploy made, to show once (never one it was given)
    registries: list[str]  # each targeted registry as `docker login` names it


def list_users(
    inventory: Path | None, limit: str | None, connect: Mapping[str, Any], forks: int
) -> dict[str, Any]:
    """``users list --json``'s object: each host's htpasswd against the inventory (never a hash)."""
    from regdeploy.ops.fanout import fan_out
    from regdeploy.ops.users_report import host_users

    run = prepare(inventory, limit, connect, render_files=False)
    results = fan_out(run.jobs, lambda j: j.name, host_users, forks)
    return {
        "ok": not any(isinstance(r, Exception) for r in results.values()),
        "hosts": {
            n: ({"ok": False, "error": run.masker.mask(str(r)), "users": []} if isinstance(r, Exception)
                else {"ok": True, "error": None, "users": r})
            for n, r in results.items()
        },
    }  # fmt: skip


def add_user(
    inventory: Path | None,
    limit: str | None,
    connect: Mapping[str, Any],
    name: str,
    supplied: str | None,
    forks: int,
    progress: Progress,
) -> UsersChanged:
    """Keep user *name* (see :func:`check_name`) in the state directory with the *supplied* password,
    else a generated one, and push htpasswd to every targeted host."""
    from regdeploy.materials.secrets import generate_password
    from regdeploy.materials.state import StateStore

    inv, specs = load_specs(inventory, limit, connect)
    for host, _, spec in specs:
        if any(u.name == name for u in spec.auth.users):
            raise InputError(f"host '{host}': user {name!r} is defined in the inventory; change it there")
    state = StateStore.beside(inv.base_dir)
    names = state_user_names(state)
    if name in names:
        raise InputError(f"user {name!r} exists already (state directory); use `users rotate {name}`")
    password = supplied or generate_password()
    save_state_user_names(state, [*names, name])
    state.write(f"secrets/{password_key(name)}", password.encode())
    state.commit()
    # The user is in the state directory now: each host's htpasswd is rendered afresh with it.
    run = prepare(inventory, limit, connect)
    return _push_all(run, forks, progress, {} if supplied else {name: password})


def remove_user(
    inventory: Path | None, limit: str | None, connect: Mapping[str, Any], name: str, forks: int,
    progress: Progress,
) -> UsersChanged:  # fmt: skip
    """Forget user *name* (added with ``users add``) and push htpasswd to every targeted host."""
    from regdeploy.materials.state import StateStore

    inv, specs = load_specs(inventory, limit, connect)
    for host, _, spec in specs:
        if any(u.name == name for u in spec.auth.users):
            raise InputError(
                f"host '{host}': user {name!r} is defined in the inventory; remove or disable it there"
            )
    state = StateStore.beside(inv.base_dir)
    names = state_user_names(state)
    if name not in names:
        raise InputError(f"no user {name!r} was added with `users add`")
    save_state_user_names(state, [n for n in names if n != name])
    state.delete(f"secrets/{password_key(name)}")
    state.commit()
    run = prepare(inventory, limit, connect)
    return _push_all(run, forks, progress, {})


def rotate(
    inventory: Path | None,
    limit: str | None,
    connect: Mapping[str, Any],
    names: Sequence[str],
    all_users: bool,
    supplied: str | None,
    forks: int,
    progress: Progress,
) -> tuple[list[str], UsersChanged]:
    """Give users new passwords and push htpasswd to every targeted host; (the rotated users, what
    changed). The users are *names*, or with *all_users* every user whose password regdeploy keeps;
    the password is *supplied* (one user only) or generated."""
    from regdeploy.materials.secrets import generate_password

    first = prepare(inventory, limit, connect)
    specs = {u.name: u for job in first.jobs for u in job.spec.auth.users}
    targets = [n for n, u in specs.items() if u.password.kind == "generated"] if all_users else list(names)
    if supplied is not None and len(targets) != 1:
        raise InputError("a supplied password can only be given to one user")
    for name in targets:
        user = specs.get(name)
        if user is None:
            raise InputError(f"no user {name!r} on the targeted hosts")
        if user.password.kind != "generated":
            raise InputError(
                f"user {name!r}: password comes from {user.password.describe()}; change it there"
            )
    credentials = {name: supplied or generate_password() for name in targets}
    for name, password in credentials.items():
        first.state.write(f"secrets/{specs[name].password.name}", password.encode())
    first.state.commit()
    # The new passwords are in the state directory now: each host's htpasswd is rendered afresh from it.
    run = prepare(inventory, limit, connect)
    return targets, _push_all(run, forks, progress, credentials if supplied is None else {})


def _push_all(run: Run, forks: int, progress: Progress, credentials: dict[str, str]) -> UsersChanged:
    """Push htpasswd to every host of *run* (after committing its state: the next `up` must render the
    very same htpasswd)."""
    from regdeploy.ops.fanout import fan_out

    def say(host: str, message: str) -> None:
        progress(host, run.masker.mask(message))

    run.state.commit()
    results = fan_out(run.jobs, lambda j: j.name, lambda j: push_htpasswd(j, run.masker, say), forks)
    pushed = {name: (str(r) if isinstance(r, Exception) else None) for name, r in results.items()}
    return UsersChanged(pushed, credentials, [login_address(job) for job in run.jobs])


# --- new credentials, for the user -----------------------------------------------------------------

def credentials_text(credentials: Mapping[str, str], registries: Sequence[str], fmt: str) -> str:
    """New credentials as *fmt*: ``user: password`` lines, .env lines, or a Docker config.json whose
    ``auths`` name every registry (one user only)."""
    if fmt == "env":
        return "".join(f"REGISTRY_{n.upper().replace('-', '_').replace('.', '_')}_PASSWORD={p}\n"
                       for n, p in credentials.items())  # fmt: skip
    if fmt == "docker-config":
        if len(credentials) != 1:
            raise InputError("--format docker-config holds one user: rotate one user at a time")
        ((name, password),) = credentials.items()
        auth = base64.b64encode(f"{name}:{password}".encode()).decode()
        return json.dumps({"auths": {a: {"auth": auth} for a in registries}}, indent=2) + "\n"
    return "".join(f"{n}: {p}\n" for n, p in credentials.items())


def write_credentials(path: Path, text: str) -> None:
    """Write *text* to *path* (``--output``) as mode 0600 from its first byte."""
    from regdeploy.fileio import atomic_write

    try:
        atomic_write(path.absolute(), text.encode(), 0o600)
    except OSError as exc:
        raise InputError(f"--output {path}: {exc.strerror}") from None
