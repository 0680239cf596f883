"""``regdeploy image build|load``: put the registry image, or regdeploy's own sidecar image, on the
LOCAL Docker engine without pulling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from regdeploy.cli.common import emit_json, progress
from regdeploy.errors import TransportError

if TYPE_CHECKING:
    from docker import DockerClient

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def local_engine() -> DockerClient:
    """A client for the local engine (``$DOCKER_HOST`` if set); TransportError if it does not answer."""
    import docker

    where = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # whatever the transport (unix socket, tcp, ssh), the engine does not answer
        from regdeploy.image.build import connection_reason

        reason = connection_reason(exc)
        raise TransportError(
            f"cannot reach the Docker engine at {where}: {reason}; is dockerd running?"
        ) from exc
    return client


@click.group("image")
def image_group() -> None:
    """Put the registry image, or a service's, on this machine's Docker engine without pulling.

    \b
    `regdeploy up` needs the registry image (default registry:2) on every host.
    Hosts that can reach Docker Hub pull it; on an air-gapped host, either build
    it from a local distribution binary or load a `docker save` archive:

    \b
      apt-get install docker-registry      # Debian's distribution 2.8.2
      regdeploy image build --binary /usr/bin/docker-registry --tag registry:2
    \b
      docker save registry:2 -o registry.tar   # on a machine that has it
      regdeploy image load registry.tar        # on the air-gapped one

    The services that run next to a registry have the same offline way: an image
    FROM scratch around Debian's redis-server or haproxy binary:

    \b
      apt-get install redis-server haproxy
      regdeploy image build --service redis   --tag redis:7
      regdeploy image build --service haproxy --tag haproxy:2.6

    regdeploy's own services (the webhook relay, registry.relay) run from its
    sidecar image, which `up` builds when it needs it; `image build --sidecar`
    builds it ahead (e.g. to `docker save` it for another machine):

    \b
      regdeploy image build --sidecar

    All of these work on the local engine ($DOCKER_HOST, else unix:///var/run/docker.sock).
    """


@image_group.command("build")
@click.option(
    "--binary",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A CNCF distribution registry binary, e.g. /usr/bin/docker-registry (Debian's docker-registry); "
    "with --service, that service's binary.  [default with --service: /usr/bin/redis-server, "
    "/usr/sbin/haproxy]",
)
@click.option(
    "--service",
    metavar="redis|haproxy",
    help="Build the image of a service that runs next to a registry, from its binary, instead of a "
    "registry image.",
)
@click.option(
    "--sidecar",
    is_flag=True,
    help="Build regdeploy's sidecar image instead (its services: the relay), from this machine's Python.",
)
@click.option(
    "--tag",
    "-t",
    metavar="NAME[:TAG]",
    help="Image name to build.  [default: regdeploy/registry:<the binary's version>; with --service "
    "regdeploy/<service>:<version>; with --sidecar the tag `up` asks for, "
    "regdeploy-sidecar:<version>-<source digest>]",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def build_command(
    binary: Path | None, service: str | None, sidecar: bool, tag: str | None, as_json: bool
) -> None:
    """Build a registry image FROM scratch around a local registry binary, the
    image of a service (--service redis|haproxy) around its binary, or
    regdeploy's sidecar image (--sidecar); no pull in any case.

    The image holds the binary as /bin/registry, the shared libraries it links
    (found with ldd), a default config (filesystem storage in /var/lib/registry,
    http on :5000) and runs `registry serve CONFIG`, like the upstream image.
    It is labelled with the binary's version (org.opencontainers.image.version).
    Re-running with the same binary is quick and gives the same image id.

    \b
    Example (air-gapped host, then deploy as usual):
      regdeploy image build --binary /usr/bin/docker-registry --tag registry:2
      regdeploy up

    A service image lays the binary out where the official image has it
    (/usr/local/bin/redis-server as in redis:7, /usr/local/sbin/haproxy as in
    haproxy:2.8), with the libraries it links, /tmp, and /data for redis (its
    working directory, owned by 65532); no entrypoint, and upstream's CMD
    (`redis-server`, `haproxy -f /usr/local/etc/haproxy/haproxy.cfg`), so a
    command given to `docker run` replaces it as it would upstream. Run either
    as a non-root user with a read-only root filesystem and a config file
    mounted read-only:

    \b
      regdeploy image build --service redis --tag redis:7
      docker run --user 65532:65532 --read-only --cap-drop ALL --tmpfs /tmp \\
        -v $PWD/redis.conf:/usr/local/etc/redis/redis.conf:ro \\
        redis:7 redis-server /usr/local/etc/redis/redis.conf
    \b
      regdeploy image build --service haproxy --binary /usr/sbin/haproxy --tag haproxy:2.6
      docker run --user 65532:65532 --read-only --cap-drop ALL --tmpfs /tmp \\
        -v $PWD/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro \\
        haproxy:2.6 haproxy -db -f /usr/local/etc/haproxy/haproxy.cfg

    haproxy as non-root on a read-only root: no `chroot`, no `user`/`group`
    by name (there is no /etc/passwd), a stats socket only under /tmp, a port
    1024 or above where the runtime does not allow low ones (Docker does).
    Once listening, redis logs "Ready to accept connections"; haproxy -db
    prints nothing (haproxy -W -db prints "Loading success.").

    The sidecar image holds this machine's Python interpreter and standard
    library, regdeploy and its dependencies, and the libraries they link, FROM
    scratch; it runs as uid 65532. Its content digest is a label: an unchanged
    regdeploy finds it built, and `up` ships it to SSH hosts that lack it.
    """
    if service is not None:
        if sidecar:
            raise click.UsageError("give one of --service NAME and --sidecar, not both")
        _build_service(service, binary, tag, as_json)
        return
    if sidecar == (binary is not None):
        raise click.UsageError("give exactly one of --binary PATH, --service NAME and --sidecar")
    if sidecar:
        _build_sidecar(tag, as_json)
        return
    assert binary is not None
    from regdeploy.image import build as image

    version = image.binary_version(binary)
    ref = tag or f"regdeploy/registry:{version}"
    client = local_engine()
    image_id = image.build_from_binary(client, binary, ref, progress=progress)
    if as_json:
        emit_json({"image": ref, "id": image_id, "version": version, "binary": str(binary)})
    else:
        click.echo(f"built {ref} ({image_id[:19]}): distribution {version} from {binary}")


def _build_service(service: str, binary: Path | None, tag: str | None, as_json: bool) -> None:
    from regdeploy.image import services

    layout = services.service_image(service)  # an unknown service: one line, exit 2
    binary = binary or Path(layout.default_binary)
    version = services.binary_version(layout.name, binary)  # missing or wrong binary: one line, exit 2
    ref = tag or f"regdeploy/{layout.name}:{version}"
    image_id = services.build_service_image(local_engine(), layout.name, binary, ref, progress=progress)
    if as_json:
        emit_json(
            {"image": ref, "id": image_id, "service": layout.name, "version": version, "binary": str(binary)}
        )
    else:
        click.echo(f"built {ref} ({image_id[:19]}): {layout.what} {version} from {binary}")


def _build_sidecar(tag: str | None, as_json: bool) -> None:
    from regdeploy.image.sidecar import build_sidecar

    ref, image_id = build_sidecar(local_engine(), tag, progress=progress)
    if as_json:
        emit_json({"image": ref, "id": image_id})
    else:
        click.echo(f"built {ref} ({image_id[:19]}): regdeploy's sidecar image")


@image_group.command("load")
@click.argument("tarball", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def load_command(tarball: Path, as_json: bool) -> None:
    """Load a `docker save` archive (plain or gzip) into the local engine.

    \b
    Example (carry the image to an air-gapped host):
      docker save registry:2 | gzip > registry-2.tar.gz   # where it can be pulled
      regdeploy image load registry-2.tar.gz               # on the air-gapped host

    Save with a name (`docker save NAME:TAG`), not an image id, so the tag comes along.
    """
    from regdeploy.image import build as image
    client = local_engine()
    loaded = image.load_tarball(client, tarball, progress=progress)
    if as_json:
        emit_json({"archive": str(tarball), "loaded": loaded})
    else:
        for name in loaded:
            click.echo(f"loaded {name}")


def register(cli: click.Group) -> None:
    """Add the ``image`` command group to *cli*."""
    cli.add_command(image_group)
