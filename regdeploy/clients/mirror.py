"""``clients mirror``: make each runtime pull an upstream's images through a pull-through cache.

- containerd: ``/etc/containerd/certs.d/UPSTREAM/hosts.toml``, the cache as a ``[host]`` tried before
  the upstream's ``server`` (Docker Hub's directory is ``docker.io``); read on each pull
- podman, CRI-O, skopeo, buildah: ``/etc/containers/registries.conf.d/50-regdeploy-PROXY.conf``, a
  ``[[registry.mirror]]`` of the upstream; read on each command (CRI-O: on reload)
- docker: ``registry-mirrors`` in ``/etc/docker/daemon.json``, for Docker Hub only; dockerd must reload
- k3s: ``mirrors."UPSTREAM".endpoint`` in ``/etc/rancher/k3s/registries.yaml``; k3s must restart

The caches' certificates are ``certs trust``'s business (it trusts every proxy port for every
runtime): each command removes only its own files, and a mirror whose CA a runtime lacks is named in a
warning (the runtime would then fall back to the upstream).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from regdeploy.certs.trust import ClientFiles
from regdeploy.clients import containerd, containers, dockerd, k3s
from regdeploy.clients.files import Outcome
from regdeploy.clients.runtimes import ClientPaths
from regdeploy.clients.trust import check_config_path, write_registries_yaml
from regdeploy.transport.address import host_port

PODMAN_RELOAD = (
    "podman, skopeo and buildah read registries.conf.d on their next command; "
    "CRI-O on `systemctl reload crio`"
)


def upstream_name(remoteurl: str) -> str:
    """The upstream as image names write it: ``docker.io`` for Docker Hub, else ``host[:port]``."""
    parts = urlsplit(remoteurl if "://" in remoteurl else f"https://{remoteurl}")
    host = parts.hostname or ""
    if host in dockerd.HUB_HOSTS:
        return "docker.io"
    port = parts.port if parts.port is not None else (80 if parts.scheme == "http" else 443)
    return host_port(host, port)


@dataclass(frozen=True)
class MirrorTarget:
    """One pull-through cache, as one client reaches it."""

    registry: str  # inventory name of the registry host
    proxy: str  # the proxy's name (registry.proxies[].name)
    remoteurl: str
    address: str  # HOST:PORT of the cache, as this client reaches it
    tls: bool = True
    private_ca: bool = True  # clients must be given its CA (certs trust does)
    unit: str = ""  # <registry name>-proxy-<proxy name>

    @property
    def upstream(self) -> str:
        return upstream_name(self.remoteurl)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @property
    def label(self) -> str:
        return self.unit or f"{self.registry}/{self.proxy}"


def apply_mirrors(
    files: ClientFiles, runtimes: Sequence[str], targets: Sequence[MirrorTarget], remove: bool,
    paths: ClientPaths,
) -> Outcome:  # fmt: skip
    """Configure (or *remove*) each target as a mirror of its upstream for each of *runtimes*."""
    out = Outcome(tuple(runtimes))
    for runtime in runtimes:
        {"docker": _docker, "containerd": _containerd, "podman": _podman, "k3s": _k3s}[runtime](
            files, targets, remove, paths, out
        )
    return out


def _decoded(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def _by_upstream(targets: Sequence[MirrorTarget]) -> dict[str, list[MirrorTarget]]:
    groups: dict[str, list[MirrorTarget]] = {}
    for t in targets:
        groups.setdefault(t.upstream, []).append(t)
    return groups


def _untrusted(runtime: str, missing: list[MirrorTarget], out: Outcome) -> None:
    if missing:
        where = ", ".join(t.address for t in missing)
        out.warnings.append(
            f"{runtime} does not trust the cache's CA at {where} yet: run `regdeploy certs trust` "
            f"(--runtime {runtime}); until then it pulls from the upstream directly"
        )


def _untrusted_in(runtime: str, certs_d: str, files: ClientFiles, targets: Sequence[MirrorTarget],
                  out: Outcome) -> None:  # fmt: skip
    """Warn about the private-CA *targets* with no ca.crt in *certs_d* (the certs.d layout)."""
    need = [t for t in targets if t.tls and t.private_ca]
    present = files.existing([f"{certs_d}/{t.address}/ca.crt" for t in need])
    _untrusted(runtime, [t for t in need if f"{certs_d}/{t.address}/ca.crt" not in present], out)


def _containerd(files: ClientFiles, targets: Sequence[MirrorTarget], remove: bool, paths: ClientPaths,
                out: Outcome) -> None:  # fmt: skip
    certs_d = paths.containerd_certs_d.rstrip("/")
    for upstream, group in _by_upstream(targets).items():
        directory = f"{certs_d}/{upstream}"
        path = f"{directory}/hosts.toml"
        text = _decoded(files.read(path))
        current = None if text is None else containerd.parse(text)
        names = ", ".join(t.label for t in group)
        if text is not None and current is None:  # someone else's: regdeploy never wrote here
            if not remove:
                out.warnings.append(f"containerd: {path} is not regdeploy's: left as is (add "
                                    f'[host."{group[0].url}"] to it for {names})')  # fmt: skip
            continue
        if remove:
            if current is not None:
                left = current.without(t.url for t in group)
                if left is None:
                    out.drop(files, "containerd", path, f"stop mirroring {upstream} through {names}")
                elif left != current:
                    out.put(files, "containerd", path, containerd.render(left).encode(),
                            f"stop mirroring {upstream} through {names}")  # fmt: skip
            files.prune(directory)
            continue
        wanted = current or containerd.HostsToml(group[0].remoteurl)
        for t in group:
            ca = f"{certs_d}/{t.address}/ca.crt" if t.tls and t.private_ca else None
            wanted = wanted.with_host(containerd.Host(t.url, ca))
        out.put(files, "containerd", path, containerd.render(wanted).encode(),
                f"pull {upstream} through {names} first")  # fmt: skip
    if not remove and targets:
        _untrusted_in("containerd", certs_d, files, targets, out)
        check_config_path(files, paths, False, out)


def _podman(files: ClientFiles, targets: Sequence[MirrorTarget], remove: bool, paths: ClientPaths,
            out: Outcome) -> None:  # fmt: skip
    conf_d = paths.registries_conf_d.rstrip("/")
    # All mirrors of one upstream go into one drop-in (a later [[registry]] of the same prefix would
    # replace an earlier one), named after the first proxy serving it.
    plan: dict[str, list[tuple[str, list[MirrorTarget]]]] = {}
    for upstream, group in _by_upstream(targets).items():
        plan.setdefault(containers.dropin_name(group[0].proxy), []).append((upstream, group))
        if len({t.proxy for t in group}) > 1:
            labels = ", ".join(t.label for t in group)
            out.notes.append(f"podman: {upstream} has {len(group)} mirrors ({labels}), "
                             f"all in {containers.dropin_name(group[0].proxy)}")  # fmt: skip
    if remove:  # each proxy's own drop-in too, should an earlier run have grouped them otherwise
        for t in targets:
            plan.setdefault(containers.dropin_name(t.proxy), [])
    changed = False
    for name, entries in plan.items():
        path = f"{conf_d}/{name}"
        text = _decoded(files.read(path))
        current = None if text is None else containers.parse(text)
        if text is not None and current is None:
            if not remove:
                out.warnings.append(f"podman: {path} is not regdeploy's: left as is")
            continue
        if remove:
            if current is not None:
                left = containers.remove_mirrors(current, (t.address for t in targets))
                if not left:
                    out.drop(files, "podman", path, "stop mirroring through regdeploy's caches")
                    changed = True
                elif left != current:
                    changed |= out.put(files, "podman", path, containers.render(left).encode(),
                                       "stop mirroring through some of regdeploy's caches")  # fmt: skip
            continue
        wanted = current or ()
        for upstream, group in entries:
            wanted = containers.add_mirrors(
                wanted, upstream, [containers.Mirror(t.address, not t.tls) for t in group]
            )
        ups = ", ".join(u for u, _ in entries)
        labels = ", ".join(t.label for _, g in entries for t in g)
        changed |= out.put(files, "podman", path, containers.render(wanted).encode(),
                           f"pull {ups} through {labels} first")  # fmt: skip
    if changed:
        out.say_reload(PODMAN_RELOAD)
    if not remove and targets:
        _untrusted_in("podman", paths.containers_certs_d.rstrip("/"), files, targets, out)


def _docker(files: ClientFiles, targets: Sequence[MirrorTarget], remove: bool, paths: ClientPaths,
            out: Outcome) -> None:  # fmt: skip
    hub = [t for t in targets if t.upstream == "docker.io"]
    others = sorted({t.upstream for t in targets if t.upstream != "docker.io"})
    if others and not remove:
        out.notes.append(f"docker: Docker can mirror Docker Hub only: not configured for {', '.join(others)} "
                         "(pull those through the cache by its own name)")  # fmt: skip
    if not hub:
        return
    path = paths.docker_daemon_json
    urls = [t.url for t in hub]
    text = _decoded(files.read(path))
    try:
        data = dockerd.load(text)
    except ValueError as exc:
        if not remove or any(u in (text or "") for u in urls):
            out.warnings.append(f"docker: {path} {exc}: left as is")
        return
    wanted = dockerd.remove_mirrors(data, urls) if remove else dockerd.add_mirrors(data, urls)
    if wanted != data:
        names = ", ".join(t.label for t in hub)
        text = dockerd.dump(wanted)
        if text is None:
            out.drop(files, "docker", path, f"stop mirroring Docker Hub through {names}")
        else:
            why = (
                f"stop mirroring Docker Hub through {names}"
                if remove
                else f"mirror Docker Hub through {names}"
            )
            out.put(files, "docker", path, text.encode(), why, files.mode(path) or 0o644)
        out.say_reload(dockerd.RELOAD)
    if not remove:
        _untrusted_in("docker", paths.docker_certs_d.rstrip("/"), files, hub, out)


def _k3s(files: ClientFiles, targets: Sequence[MirrorTarget], remove: bool, paths: ClientPaths,
         out: Outcome) -> None:  # fmt: skip
    path = paths.k3s_registries
    text = _decoded(files.read(path))
    try:
        data = k3s.load(text)
    except ValueError as exc:
        if not remove:
            out.warnings.append(f'k3s: {path} {exc}: left as is; add mirrors."UPSTREAM".endpoint yourself')
        elif any(t.url in (text or "") for t in targets):
            out.warnings.append(f"k3s: {path} {exc}: left as is; take its regdeploy endpoints out by hand")
        return
    wanted = data
    for upstream, group in _by_upstream(targets).items():
        urls = [t.url for t in group]
        wanted = (
            k3s.remove_endpoint(wanted, upstream, urls)
            if remove
            else k3s.add_endpoint(wanted, upstream, urls)
        )
    write_registries_yaml(
        files, path, data, wanted, "k3s pulls the upstreams through regdeploy's caches", out
    )
    if not remove and targets:
        configs = wanted.get("configs") or {}

        def has_ca(t: MirrorTarget) -> bool:
            return bool(((configs.get(t.address) or {}).get("tls") or {}).get("ca_file"))

        _untrusted("k3s", [t for t in targets if t.tls and t.private_ca and not has_ca(t)], out)
