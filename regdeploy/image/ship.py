"""Images to hosts that cannot pull: ``docker save`` on the control machine's engine, streamed into
the host's ``docker load`` over the host's connection. Nothing touches the disk on either side
except the engines themselves.

``registry.image_source`` chooses how a host missing the image gets it:

* ``pull``: the host's engine pulls it (the host must reach the image's registry);
* ``ship``: always from the control machine (air-gapped hosts; also keeps every host on the exact
  image id the control machine has);
* ``auto`` (default): pull, and when the pull fails and the control machine has the image, ship it.

A host that already has the same image id is never sent a byte; one that has the id under another
name only gets the tag.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from regdeploy.errors import ImageError, RegdeployError, TransportError
from regdeploy.image.build import AIRGAP_HINT, connection_reason, ensure_image, split_ref
from regdeploy.spec import validate as v

if TYPE_CHECKING:
    from regdeploy.transport.base import Transport

IMAGE_SOURCES = ("auto", "pull", "ship")
CHUNK = 1 << 20
PROGRESS_EVERY = 1.0  # seconds between progress lines while streaming
DISK_MARGIN = 64 << 20  # free space left over after a load, for the engine's own bookkeeping

Progress = Callable[[str], None]
ControlEngine = Callable[[], Any]  # opens a docker.DockerClient on the control machine


def image_source(host_vars: Mapping[str, Any], host: str, source: str = "inventory") -> str:
    """The validated ``registry.image_source`` of a host (default ``auto``). SpecError if invalid.

    Until ``RegistrySpec`` carries the key this reads the raw ``registry`` mapping.
    """
    registry = host_vars.get("registry")
    raw = registry.get("image_source") if isinstance(registry, Mapping) else None
    if raw is None:
        return "auto"
    return v.choice(raw, v.Where(host, "registry.image_source", {}, source), IMAGE_SOURCES)


@dataclass(frozen=True)
class Shipped:
    image_id: str
    bytes_sent: int  # 0 when the host had the image already (only a tag was added)
    seconds: float


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _api_error(action: str, exc: BaseException) -> RegdeployError:
    import docker.errors

    if isinstance(exc, docker.errors.APIError):
        return ImageError(f"{action}: {' '.join(str(exc.explanation or exc).split())}")
    reason = connection_reason(exc)
    if reason in ("EOFError", "SSHException"):
        reason = "closed by the other side"  # paramiko's exceptions often carry no message
    return TransportError(f"{action}: the connection to the host broke ({reason})")


class _Meter:
    """Passes chunks through, counting them and saying every PROGRESS_EVERY seconds how far it got."""

    def __init__(self, chunks: Iterator[bytes], total: int, say: Progress, what: str) -> None:
        self._chunks = chunks
        self._total = total
        self._say = say
        self._what = what
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        start = last = time.monotonic()
        for chunk in self._chunks:
            self.sent += len(chunk)
            yield chunk
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY:
                last = now
                share = f" of ~{_mb(self._total)}" if self._total else ""
                rate = self.sent / (now - start) / 1e6
                self._say(f"shipping {self._what}: {_mb(self.sent)}{share} sent ({rate:.0f} MB/s)")


def ship_image(
    control: Any,
    remote: Any,
    ref: str,
    progress: Progress,
    free_space: Callable[[str], int | None] | None = None,
) -> Shipped:
    """Copy image *ref* from the *control* engine to the *remote* one (both docker.DockerClient)."""
    import docker.errors

    start = time.monotonic()
    try:
        local = control.api.inspect_image(ref)
    except docker.errors.NotFound:
        raise ImageError(
            f"image {ref!r} is not on the control machine's Docker engine, so it cannot be shipped; "
            f"pull or build it there first ({AIRGAP_HINT})"
        ) from None
    except Exception as exc:
        raise _api_error(f"cannot inspect {ref!r} on the control machine", exc) from None
    image_id, size = str(local["Id"]), int(local.get("Size") or 0)
    name, tag, _ = split_ref(ref)
    try:
        try:
            remote.api.inspect_image(image_id)
        except docker.errors.NotFound:
            pass
        else:
            # Same content under another name (or untagged): a tag is all that is missing.
            remote.api.tag(image_id, name, tag or "latest")
            progress(f"image {ref} already on the host as {image_id[:19]}: tagged, nothing shipped")
            return Shipped(image_id, 0, time.monotonic() - start)
        if free_space is not None and size:
            root = str(remote.info().get("DockerRootDir") or "/var/lib/docker")
            free = free_space(root)
            if free is not None and free < size + DISK_MARGIN:
                raise ImageError(
                    f"disk full: {root} on the host has {_mb(free)} free; shipping {ref} needs about "
                    f"{_mb(size + DISK_MARGIN)}"
                )
        progress(f"shipping {ref} ({image_id[:19]}, ~{_mb(size)}) from the control machine")
        counter = _Meter(control.api.get_image(ref, chunk_size=CHUNK), size, progress, ref)
        for status in remote.api.load_image(iter(counter)):
            if "error" in status or "errorDetail" in status:
                detail = status.get("errorDetail") or {}
                message = " ".join(str(detail.get("message") or status.get("error")).split())
                raise ImageError(f"loading {ref} on the host failed: {message}")
        loaded = remote.api.inspect_image(ref)
    except RegdeployError:
        raise
    except Exception as exc:
        raise _api_error(f"shipping {ref} to the host failed", exc) from None
    if str(loaded["Id"]) != image_id:
        raise ImageError(f"shipping {ref}: the host loaded {loaded['Id'][:19]}, expected {image_id[:19]}")
    seconds = time.monotonic() - start
    rate = counter.sent / seconds / 1e6 if seconds > 0 else 0.0
    progress(f"shipped {ref}: {_mb(counter.sent)} in {seconds:.1f}s ({rate:.0f} MB/s)")
    return Shipped(image_id, counter.sent, seconds)


def _control_engine() -> Any:
    from regdeploy.transport.engine import connect

    return connect("control machine")


def provide_image(
    transport: Transport,
    ref: str,
    source: str,
    progress: Progress,
    control_engine: ControlEngine = _control_engine,
) -> str:
    """Make sure image *ref* is on *transport*'s engine, as *source* says; return its id there."""
    remote = transport.docker()
    if source == "pull":
        return ensure_image(remote, ref, progress=progress, where=f"{transport.host}'s Docker engine")
    if source == "auto":
        try:
            return ensure_image(remote, ref, progress=progress, where=f"{transport.host}'s Docker engine")
        except ImageError as pull_error:
            pull_failed: ImageError = pull_error
    control = control_engine()
    try:
        if source == "auto":
            import docker.errors

            try:
                control.api.inspect_image(ref)
            except docker.errors.NotFound:
                raise ImageError(
                    f"{pull_failed}; the control machine does not have it either, so it cannot be shipped"
                ) from None
            progress(f"the host cannot pull {ref}: shipping it from the control machine instead")
        return ship_image(control, remote, ref, progress, transport.free_space).image_id
    finally:
        control.close()


def provide_sidecar(
    transport: Transport, ref: str, progress: Progress, control_engine: ControlEngine = _control_engine
) -> str:
    """regdeploy's own sidecar image on *transport*'s engine: built on the control machine from
    its own Python and regdeploy (no pull anywhere), then shipped to a host that lacks it."""
    from regdeploy.image.sidecar import build_sidecar

    have = transport.engine().inspect_image(ref)
    if have is not None:
        return str(have["Id"])
    control = control_engine()
    try:
        progress(f"building {ref} (regdeploy's sidecar image) on the control machine")
        _, _image_id = build_sidecar(control, ref, progress)
        have = transport.engine().inspect_image(ref)
        if have is not None:  # the host's engine is the control machine's
            return str(have["Id"])
        return ship_image(control, transport.docker(), ref, progress, transport.free_space).image_id
    finally:
        control.close()


def image_provider(
    transport: Transport, host_vars: Mapping[str, Any], progress: Progress, sidecar_ref: str = ""
) -> Callable[[str], str]:
    """``apply_plan``'s way to get an image onto this host: ``ref -> image id``. regdeploy's own
    sidecar image (*sidecar_ref*, when regdeploy names it) is built and shipped, never pulled."""
    from regdeploy.image.sidecar_ref import SIDECAR_REPOSITORY

    source = image_source(host_vars, transport.host)

    def obtain(ref: str) -> str:
        if ref == sidecar_ref and ref.startswith(SIDECAR_REPOSITORY + ":"):
            return provide_sidecar(transport, ref, progress)
        return provide_image(transport, ref, source, progress)

    return obtain
