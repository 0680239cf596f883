"""``users list``: each host's htpasswd compared with the users the inventory wants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regdeploy.deploy.layout import users_file
from regdeploy.materials.htpasswd import parse
from regdeploy.transport import open_transport

if TYPE_CHECKING:
    from regdeploy.ops.run import HostJob


def host_users(job: HostJob) -> list[dict[str, Any]]:
    transport = open_transport(job.name, job.vars)
    try:
        data = transport.read_file(users_file(job.spec))
    finally:
        transport.close()
    on_host = {line.name: line for line in parse(data or b"")}
    wanted = {u.name: u.hash for u in job.materials.users}
    rows: list[dict[str, Any]] = []
    for user in job.spec.auth.users:
        line = on_host.get(user.name)
        if user.disabled:
            status = "disabled" if line is None else "disabled (still on host)"
        elif line is None:
            status = "missing"
        elif not line.is_bcrypt:
            status = "not bcrypt (refused by the registry)"
        elif line.hashed != wanted[user.name] and not _same_password(job, user.name, line.hashed):
            status = "out-of-date"
        else:
            status = "ok"
        rows.append({"name": user.name, "password": user.password.describe(), "status": status})
    for name, line in on_host.items():
        if name not in {u.name for u in job.spec.auth.users}:
            note = "" if line.is_bcrypt else ", not bcrypt (refused by the registry)"
            rows.append({"name": name, "password": "-", "status": "unmanaged (on host only)" + note})
    return rows


def _same_password(job: HostJob, name: str, hashed: str) -> bool:
    """A different hash may still hold the same password (another salt): ask bcrypt."""
    from regdeploy.materials.htpasswd import check_password, hash_cost

    same_cost = hash_cost(hashed) == job.spec.auth.bcrypt_cost
    return same_cost and check_password(job.materials.passwords[name], hashed)

