"""``regdeploy status``: what runs on each host, read-only."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from regdeploy.deploy.facts import ContainerFacts, inspect_container, registry_containers
from regdeploy.deploy.units import unit_names
from regdeploy.errors import HostError
from regdeploy.transport import open_transport
from regdeploy.transport.address import host_port

if TYPE_CHECKING:
    from regdeploy.ops.run import HostJob
    from regdeploy.spec.cluster import Backend, ClusterView


def _extra(container: ContainerFacts) -> str:
    """The role shown for a container of the registry that is no unit of the host."""
    if container.role == "standby":
        return "standby (read-only, while the registry restarts; `up` removes one left behind)"
    return "no longer wanted"


def host_status(job: HostJob, clusters: ClusterHealth | None = None) -> dict[str, Any]:
    spec = job.spec
    transport = open_transport(job.name, job.vars)
    try:
        engine = transport.engine()
        container = inspect_container(engine, spec.name)
        units = [_unit(name, role, inspect_container(engine, name)) for name, role in unit_names(spec)]
        known = {u["name"] for u in units}
        units += [_unit(c.name, _extra(c), c) for c in registry_containers(engine, spec)
                  if c.name not in known]  # fmt: skip
        out: dict[str, Any] = {
            "ok": True,
            "container": spec.name,
            "running": bool(container and container.running),
            "state": container.status if container else "absent",
            "managed": bool(container and container.managed),
            "image": spec.image,
            "image_id": (container.image_id if container else None),
            "ports": sorted(f"{ip}:{port}" for ip, port in container.host_ports) if container else [],
            "url": f"{spec.scheme}://{host_port(transport.address, spec.port)}",
            "cert_not_after": None,
            "cert_days_left": None,
            "data_dir": spec.data_dir,
            "data_bytes": transport.dir_size(spec.data_dir),
            "repositories": None,
            "units": units,
            "network": spec.network if engine.inspect_network(spec.network) else None,
            "error": None,
        }
        crt = transport.read_file(f"{spec.config_dir}/certs/server.crt") if spec.tls.mode != "none" else None
        if crt:
            from regdeploy import pki

            info = pki.cert_info(crt)
            out["cert_not_after"] = info.not_after.isoformat()
            out["cert_days_left"] = info.days_left(datetime.now(UTC))
        if out["running"]:
            out["repositories"] = _repositories(job, transport.address)
        out["metrics"] = _metrics(job, transport.address) if spec.metrics and out["running"] else None
        out["storage"] = spec.storage.describe(spec.data_dir) if spec.serves else None
        out["cluster"] = (clusters or ClusterHealth()).of(job)
        return out
    finally:
        transport.close()


def _health(address: str, port: int, ca: bytes | None) -> str:
    """``GET /`` as a balancer checks it: "up", or why not."""
    from regdeploy.deploy.health import http_probe

    try:
        code = http_probe(address, port, ca)
    except OSError as exc:
        return f"down ({' '.join(str(exc).split())[:80] or type(exc).__name__})"
    return "up" if code == 200 else f"down (GET / answers {code})"


class ClusterHealth:
    """A cluster's members and balancers as this machine sees them — each replica directly, and each
    balancer's answer (it answers while one replica passes its checks) — probed once per run, however
    many of the cluster's hosts `status` shows (hosts run in parallel: the first one probes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, dict[str, Any]] = {}

    def of(self, job: HostJob) -> dict[str, Any] | None:
        view = job.spec.cluster_view
        if view is None:
            return None
        with self._lock:
            if view.name not in self._seen:
                self._seen[view.name] = _probe(view, job.materials.tls.ca_cert if job.materials.tls else None)
            return self._seen[view.name]


def _probe(view: ClusterView, ca: bytes | None) -> dict[str, Any]:
    def row(b: Backend) -> dict[str, str]:
        health = _health(b.address, b.port, ca)
        return {"host": b.host, "address": host_port(b.address, b.port), "health": health}

    members = [row(m) for m in view.members]
    return {"name": view.name, "members": members, "balancers": [row(b) for b in view.balancers]}


def _unit(name: str, role: str, c: ContainerFacts | None) -> dict[str, Any]:
    return {
        "name": name,
        "role": role,
        "state": c.status if c else "absent",
        "running": bool(c and c.running),
        "image": (c.definition or {}).get("image") if c else None,
        "image_id": c.image_id if c else None,
        "ports": sorted(f"{ip}:{port}" for ip, port in c.host_ports) if c else [],
    }


def _metrics(job: HostJob, address: str) -> dict[str, Any]:
    """Request and error counts from the registry's /metrics (registry.metrics): reached from here
    when the host is this machine or the port is published beyond loopback."""
    from regdeploy.ops.metrics import MetricsFormatError, read_counts
    from regdeploy.transport.address import is_local

    metrics = job.spec.metrics
    assert metrics is not None
    local = is_local(job.name, job.vars)
    if metrics.loopback and not local:
        return {"error": f"published on {metrics.bind} of the host: not reachable from this machine"}
    where = metrics.bind if local and metrics.loopback else address
    try:
        return read_counts(where, metrics.port, metrics.path).as_dict()
    except (OSError, MetricsFormatError) as exc:
        return {"error": f"{where}:{metrics.port}{metrics.path}: {exc}"}


def _repositories(job: HostJob, address: str) -> list[str] | None:
    from regdeploy.verify.registry_api import RegistryClient

    user = next((u for u in job.spec.auth.users if not u.disabled), None)
    if user is None:
        return None
    ca = job.materials.tls.ca_cert if job.materials.tls else None
    client = RegistryClient(address, job.spec.port, ca, user.name, job.materials.passwords[user.name])
    try:
        return client.catalog()
    except OSError as exc:
        raise HostError(f"{job.name}: cannot list repositories: {exc}") from None


def print_status(payload: dict[str, Any]) -> None:
    for name, s in payload["hosts"].items():
        if s.get("error"):
            click.secho(f"{name}: FAILED: {s['error']}", fg="red")
            continue
        colour = "green" if s["running"] else "red"
        click.secho(f"{name}: {s['container']} {s['state']}", fg=colour, bold=True)
        click.echo(f"  url          {s['url']}   ports {', '.join(s['ports']) or '-'}")
        click.echo(f"  image        {s['image']} ({(s['image_id'] or '-').removeprefix('sha256:')[:12]})")
        if s["cert_not_after"]:
            click.echo(
                f"  certificate  valid until {s['cert_not_after'][:10]} ({s['cert_days_left']} days left)"
            )
        for u in s.get("units", []):
            image = (u["image"] or "-") + (
                f" ({u['image_id'].removeprefix('sha256:')[:12]})" if u["image_id"] else ""
            )
            click.secho(f"  unit         {u['name']:<24} {u['role']:<9} {u['state']:<8} {image}",
                        fg=None if u["running"] else "yellow")  # fmt: skip
        size = s["data_bytes"]
        if s.get("storage") and not s["storage"].startswith("filesystem"):
            click.echo(f"  storage      {s['storage']}")
        elif s.get("storage"):
            click.echo(f"  data         {s['data_dir']} ({_human(size) if size is not None else 'absent'})")
        c = s.get("cluster")
        if c:
            for kind, rows in (("replica", c["members"]), ("balancer", c["balancers"])):
                for r in rows:
                    click.secho(f"  {kind:<12} {r['host']:<12} {r['address']:<24} {r['health']}",
                                fg=None if r["health"] == "up" else "yellow")  # fmt: skip
        m = s.get("metrics")
        if m:
            text = m["error"] if "error" in m else f"{m['requests']} requests, {m['errors']} errors (5xx)"
            click.echo(f"  metrics      {text}")
        repos = s["repositories"]
        if repos is not None:
            click.echo(f"  repositories {len(repos)}" + (f": {', '.join(repos[:10])}" if repos else ""))
            if len(repos) > 10:
                click.echo(f"               ... and {len(repos) - 10} more")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
