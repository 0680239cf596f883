"""``certs trust`` for every runtime: the files that make each one trust a registry's CA.

- docker: ``/etc/docker/certs.d/HOST:PORT/ca.crt`` (read on each connection)
- podman, CRI-O, skopeo, buildah: ``/etc/containers/certs.d/HOST:PORT/ca.crt`` (the same, on each command)
- containerd: ``/etc/containerd/certs.d/HOST:PORT/{hosts.toml,ca.crt}`` (read on each pull, when the
  CRI's ``config_path`` points there or with ``ctr --hosts-dir``)
- k3s: ``configs."HOST:PORT".tls.ca_file`` in ``/etc/rancher/k3s/registries.yaml``, the CA in
  ``/etc/rancher/k3s/regdeploy/HOST:PORT/ca.crt`` (read when k3s starts)

Removal takes away only what holds the registry's CA or regdeploy's entries, then the per-address
directories left empty.
"""

from __future__ import annotations

from collections.abc import Sequence

from regdeploy.certs.trust import ClientFiles, TrustItem, apply_trust
from regdeploy.clients import containerd, k3s
from regdeploy.clients.files import Outcome
from regdeploy.clients.runtimes import ClientPaths

CONTAINERD_RESTART = "containerd reads config_path when it starts: `systemctl restart containerd`"


def apply_runtime_trust(
    files: ClientFiles,
    runtimes: Sequence[str],
    items: Sequence[TrustItem],
    remove: bool,
    paths: ClientPaths,
    configure_containerd: bool = False,
) -> Outcome:
    """Install (or *remove*) the trust of each item for each of *runtimes* on one client."""
    out = Outcome(tuple(runtimes))
    for runtime in runtimes:
        if runtime in ("docker", "podman"):
            certs_d = paths.docker_certs_d if runtime == "docker" else paths.containers_certs_d
            changes, notes = apply_trust(files, certs_d, items, remove, runtime)
            out.changes += changes
            out.notes += notes
        elif runtime == "containerd":
            _containerd(files, items, remove, paths, out)
            if remove:
                left_config_path(files, paths, out)
            elif items:
                check_config_path(files, paths, configure_containerd, out)
        elif runtime == "k3s":
            _k3s(files, items, remove, paths, out)
    return out


def _decoded(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def _put_ca(files: ClientFiles, runtime: str, path: str, item: TrustItem, out: Outcome) -> None:
    current = files.read(path)
    why = "trust" if current is None else "replace another CA with"
    out.put(files, runtime, path, item.ca, f"{why} {item.registry}'s CA")


def _drop_ca(files: ClientFiles, runtime: str, path: str, item: TrustItem, out: Outcome) -> None:
    current = files.read(path)
    if current is None:
        return
    if current.strip() != item.ca.strip():
        out.notes.append(f"{path} is not {item.registry}'s CA: left in place")
        return
    out.drop(files, runtime, path, f"stop trusting {item.registry}'s CA")


def _containerd(
    files: ClientFiles, items: Sequence[TrustItem], remove: bool, paths: ClientPaths, out: Outcome
) -> None:
    for item in items:
        directory = f"{paths.containerd_certs_d.rstrip('/')}/{item.address}"
        ca_path, toml_path = f"{directory}/ca.crt", f"{directory}/hosts.toml"
        text = _decoded(files.read(toml_path))
        current = None if text is None else containerd.parse(text)
        if text is not None and current is None:  # someone else's: regdeploy never wrote here
            if not remove:
                out.notes.append(
                    f"{toml_path} is not regdeploy's: left as is (for {item.registry}'s CA it needs "
                    f'ca = "{ca_path}" under [host."https://{item.address}"])'
                )
            continue
        entry = containerd.trust_entry(item.address, ca_path)
        if remove:
            if current is not None and any(h.url == entry.url for h in current.hosts):
                left = current.without([entry.url])
                reason = f"stop trusting {item.registry}'s CA"
                if left is None:
                    out.drop(files, "containerd", toml_path, reason)
                else:
                    out.put(files, "containerd", toml_path, containerd.render(left).encode(),
                            f"{reason}; the mirrors in it stay")  # fmt: skip
            _drop_ca(files, "containerd", ca_path, item, out)
            files.prune(directory)
            continue
        _put_ca(files, "containerd", ca_path, item, out)
        server = containerd.https(item.address)
        wanted = (current or containerd.HostsToml(server)).with_host(entry, server=server)
        out.put(files, "containerd", toml_path, containerd.render(wanted).encode(),
                f"containerd verifies {item.address} with {item.registry}'s CA")  # fmt: skip


def check_config_path(files: ClientFiles, paths: ClientPaths, configure: bool, out: Outcome) -> None:
    """One warning when the client's containerd config does not point its CRI plugin at
    ``certs.d`` (kubelet would not see the hosts.toml files); with *configure*, set it instead."""
    config, certs_d = paths.containerd_config, paths.containerd_certs_d.rstrip("/")
    text = _decoded(files.read(config))
    if text is None:
        if configure:
            out.notes.append(f"{config} does not exist: nothing to configure (containerd 2.x reads "
                             f"{certs_d} by default; 1.x needs a config with config_path)")  # fmt: skip
        return
    problem = containerd.config_path_problem(text, certs_d)
    if problem is None:
        return
    if not configure:
        out.warnings.append(
            f"containerd: {config} {problem}: its CRI plugin (kubelet) does not read these hosts.toml "
            f"files (ctr needs --hosts-dir {certs_d}); `certs trust --configure-containerd` sets it"
        )
        return
    try:
        edited = containerd.set_config_path(text, certs_d)
    except ValueError as exc:
        out.warnings.append(f'containerd: {config} not changed: {exc}; set config_path = "{certs_d}" by hand')
        return
    out.put(files, "containerd", config, edited.encode(),
            f"the CRI plugin reads {certs_d} (config_path)", files.mode(config) or 0o644)  # fmt: skip
    out.say_reload(CONTAINERD_RESTART)


def left_config_path(files: ClientFiles, paths: ClientPaths, out: Outcome) -> None:
    """On removal: say that the config_path regdeploy set stays (it is harmless and shared)."""
    text = _decoded(files.read(paths.containerd_config))
    if text is not None and containerd.CONFIG_PATH_NOTE in text:
        out.notes.append(
            f"{paths.containerd_config} keeps the config_path --configure-containerd set (it only says "
            "where hosts.toml files are; remove that line by hand if you want it gone)"
        )


def _k3s(
    files: ClientFiles, items: Sequence[TrustItem], remove: bool, paths: ClientPaths, out: Outcome
) -> None:
    path = paths.k3s_registries
    base = paths.k3s_certs.rstrip("/")
    text = _decoded(files.read(path))
    try:
        data = k3s.load(text)
    except ValueError as exc:
        if not remove:
            out.warnings.append(f'k3s: {path} {exc}: left as is; add configs."HOST:PORT".tls.ca_file by hand')
        elif text is not None and base in text:
            out.warnings.append(f"k3s: {path} {exc}: left as is; take its ca_file under {base} out by hand")
        return
    wanted = data
    for item in items:
        ca_path = f"{base}/{item.address}/ca.crt"
        if remove:
            wanted = k3s.remove_ca(wanted, item.address, ca_path)
            _drop_ca(files, "k3s", ca_path, item, out)
            files.prune(f"{base}/{item.address}")
        else:
            _put_ca(files, "k3s", ca_path, item, out)
            wanted = k3s.add_ca(wanted, item.address, ca_path)
    if remove:
        files.prune(base)
    write_registries_yaml(files, path, data, wanted, "k3s verifies the registries with their CA", out)


def write_registries_yaml(files: ClientFiles, path: str, data: dict[str, object],
                          wanted: dict[str, object], reason: str, out: Outcome) -> None:  # fmt: skip
    if wanted == data:
        return
    text = k3s.dump(wanted)
    if text is None:
        out.drop(files, "k3s", path, "no entry left in it")
    else:
        out.put(files, "k3s", path, text.encode(), reason, files.mode(path) or 0o600)
    out.say_reload(k3s.RESTART)
