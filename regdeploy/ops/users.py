"""Registry users beyond the inventory's, password rotation, and pushing htpasswd alone.

Users normally live in the inventory (``registry.auth.users``). ``users add`` keeps extra users in the
state directory (``materials/users.py``), and every command that renders htpasswd merges them in. The
registry re-reads htpasswd when its mtime changes, so pushing it is the whole change: no restart, no
dropped request.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from regdeploy.deploy.plan import Plan
from regdeploy.errors import HostError, InputError, RegdeployError
from regdeploy.materials.htpasswd import MAX_PASSWORD_BYTES
from regdeploy.materials.secrets import Masker
from regdeploy.ops.run import HostJob
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
    from regdeploy.deploy.plan import make_plan
    from regdeploy.transport import open_transport

    path = f"{job.spec.config_dir}/auth/htpasswd"
    transport = open_transport(job.name, job.vars)
    try:
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
        text = masker.mask(str(exc))
        raise HostError(text if text.startswith(f"{job.name}:") else f"{job.name}: {text}") from None
    finally:
        transport.close()
