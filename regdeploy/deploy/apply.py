"""Carry out a host's plan: image, directories, files (atomically), then the container.

Order matters for "no partial change": the only step that can fail for outside reasons before
anything is written (pulling the image) goes first. When the new container does not become
healthy, the files it was given are put back and the previous container returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from regdeploy.deploy.definition import OLD_SUFFIX, Definition, create_kwargs
from regdeploy.deploy.health import wait_ready
from regdeploy.deploy.plan import Plan
from regdeploy.deploy.render import Rendered
from regdeploy.errors import ApplyError, HostError, RegdeployError
from regdeploy.spec.registry import RegistrySpec
from regdeploy.transport.base import Transport

Progress = Callable[[str], None]


@dataclass
class _Undo:
    """What to put back if the new container fails: old file contents (None = did not exist)."""

    files: dict[str, tuple[bytes | None, int]]


def apply_plan(
    transport: Transport,
    spec: RegistrySpec,
    rendered: Rendered,
    plan: Plan,
    wanted: Definition,
    ca_pem: bytes | None,
    progress: Progress,
    mask: Callable[[str], str],
    obtain_image: Callable[[str], str] | None = None,
) -> None:
    """*obtain_image*: how the host gets a missing image (ref -> image id); default: pull it."""
    if not plan.changed:
        return
    client = transport.docker()
    for change in plan.of_kind("image"):
        if obtain_image is not None:
            wanted["image_id"] = obtain_image(change.target)
            continue
        from regdeploy.image.build import ensure_image

        progress(f"pulling {change.target}")
        wanted["image_id"] = ensure_image(client, change.target, progress=progress)

    undo = _Undo(files={})
    for change in plan.of_kind("dir"):
        mode = next(d.mode for d in rendered.dirs if d.path == change.target)
        if change.action == "create":
            transport.makedirs(change.target, mode)
        else:
            transport.chmod(change.target, mode)
    by_path = {f.path: f for f in rendered.files}
    for change in plan.of_kind("file"):
        f = by_path[change.target]
        if change.action == "chmod":
            transport.chmod(f.path, f.mode)
            continue
        undo.files[f.path] = (transport.read_file(f.path), f.mode)
        transport.put_file(f.path, f.data, f.mode)

    restored: list[str] = []

    def restore() -> None:
        restored.append(_restore_files(transport, undo))

    try:
        _apply_container(client, transport, spec, plan, wanted, ca_pem, progress, mask, restore)
    except RegdeployError as exc:
        raise ApplyError(f"{spec.host}: {exc}{''.join(restored)}") from None


@dataclass(frozen=True)
class _Container:
    """What every container step needs: the engine, how the new container is made, how to tell it
    serves, and how to put the previous files back."""

    client: Any
    transport: Transport
    spec: RegistrySpec
    wanted: Definition
    ca_pem: bytes | None
    mask: Callable[[str], str]
    restore: Callable[[], None]

    def create(self) -> Any:
        return self.client.containers.create(**create_kwargs(self.spec, self.wanted, self.spec.name))

    def wait_ready(self, container: Any) -> None:
        s = self.spec
        acme = s.tls.mode == "letsencrypt"
        wait_ready(container, self.transport.address, s.port, self.ca_pem, s.health_timeout, self.mask, acme)


def _apply_container(
    client: Any,
    transport: Transport,
    spec: RegistrySpec,
    plan: Plan,
    wanted: Definition,
    ca_pem: bytes | None,
    progress: Progress,
    mask: Callable[[str], str],
    restore: Callable[[], None],
) -> None:
    import docker.errors

    c = _Container(client, transport, spec, wanted, ca_pem, mask, restore)
    for change in plan.of_kind("container"):
        try:
            if change.action == "create":
                progress(f"starting container {spec.name}")
                _start_new(c)
            elif change.action in ("recreate", "adopt"):
                progress(f"replacing container {spec.name} ({change.reason})")
                _replace(c)
            elif change.action == "start":
                progress(f"starting container {spec.name}")
                container = client.containers.get(spec.name)
                container.start()
                c.wait_ready(container)
            elif change.action == "restart":
                progress(f"restarting container {spec.name} ({change.reason})")
                _restart(c, client.containers.get(spec.name))
            elif change.action == "remove":
                client.containers.get(change.target).remove(force=True)
        except docker.errors.APIError as exc:
            raise HostError(
                f"container {change.target}: {change.action} failed: {exc.explanation or exc}"
            ) from None


def _start_new(c: _Container) -> None:
    container = c.create()
    try:
        container.start()
        c.wait_ready(container)
    except BaseException:
        container.remove(force=True)
        c.restore()
        raise


def _replace(c: _Container) -> None:
    """Keep the old container aside until the new one serves; bring it back if it does not."""
    import docker.errors

    name = c.spec.name
    old = c.client.containers.get(name)
    was_running = old.status in ("running", "restarting")
    aside = name + OLD_SUFFIX
    with contextlib.suppress(docker.errors.NotFound):
        c.client.containers.get(aside).remove(force=True)
    old.rename(aside)
    try:
        new = c.create()
    except BaseException:
        old.rename(name)
        raise
    try:
        # Stop only now: the gap is stop + start + first answer, not image or create time.
        old.stop(timeout=10)
        new.start()
        c.wait_ready(new)
    except BaseException:
        new.remove(force=True)
        c.restore()  # before the old container starts again: it reads its files at start
        old.rename(name)
        if was_running:
            old.start()
            # The caller reports the failure; the registry that served before should serve again
            # when it does. If even the old one cannot start, that is the error worth showing.
            c.wait_ready(old)
        raise
    old.remove()  # without v=True: anonymous volumes of an adopted container survive


def _restart(c: _Container, container: Any) -> None:
    """Restart the same container to read rewritten files; if it does not answer, restart it on
    the previous files."""
    try:
        container.restart(timeout=10)
        c.wait_ready(container)
    except BaseException as exc:
        c.restore()
        try:
            container.restart(timeout=10)
            c.wait_ready(container)
        except Exception as again:  # the first failure stays the headline; say the second too
            detail = getattr(again, "explanation", None) or again
            raise ApplyError(
                f"{exc}; restarted on the previous files, it did not serve either: {detail}"
            ) from None
        raise


def _restore_files(transport: Transport, undo: _Undo) -> str:
    failed = []
    for path, (data, mode) in undo.files.items():
        try:
            if data is None:
                continue  # new files are harmless without a container that reads them
            transport.put_file(path, data, mode)
        except RegdeployError:
            failed.append(path)
    if failed:
        return f"; could not restore {', '.join(failed)}"
    return "; the previous files were put back" if undo.files else ""
