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
    """Put the registry image on this machine's Docker engine without pulling.

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
    help="A CNCF distribution registry binary, e.g. /usr/bin/docker-registry (Debian's docker-registry).",
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
    help="Image name to build.  [default: regdeploy/registry:<the binary's version>; with --sidecar "
    "the tag `up` asks for, regdeploy-sidecar:<version>-<source digest>]",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def build_command(binary: Path | None, sidecar: bool, tag: str | None, as_json: bool) -> None:
    """Build a registry image FROM scratch around a local registry binary, or
    regdeploy's sidecar image (--sidecar); no pull either way.

    The image holds the binary as /bin/registry, the shared libraries it links
    (found with ldd), a default config (filesystem storage in /var/lib/registry,
    http on :5000) and runs `registry serve CONFIG`, like the upstream image.
    It is labelled with the binary's version (org.opencontainers.image.version).
    Re-running with the same binary is quick and gives the same image id.

    \b
    Example (air-gapped host, then deploy as usual):
      regdeploy image build --binary /usr/bin/docker-registry --tag registry:2
      regdeploy up

    The sidecar image holds this machine's Python interpreter and standard
    library, regdeploy and its dependencies, and the libraries they link, FROM
    scratch; it runs as uid 65532. Its content digest is a label: an unchanged
    regdeploy finds it built, and `up` ships it to SSH hosts that lack it.
    """
    if sidecar == (binary is not None):
        raise click.UsageError("give exactly one of --binary PATH and --sidecar")
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
