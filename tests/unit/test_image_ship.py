"""Image shipping decisions (skip, tag only, disk, auto fallback) against in-memory engines.

The engines are small fakes passed in explicitly (no patching); the real streaming is covered by the
fleet tests on lab hosts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest

from regdeploy.errors import ImageError, SpecError
from regdeploy.image.ship import DISK_MARGIN, image_source, provide_image, ship_image

REF = "registry:2"
IMAGE_ID = "sha256:" + "ab" * 32


class FakeAPI:
    def __init__(self, images: dict[str, dict[str, Any]], pull_error: str | None = None) -> None:
        self.images = images  # ref or id -> inspect data
        self.loaded: list[bytes] = []
        self.tags: list[tuple[str, str, str]] = []
        self.pull_error = pull_error

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref not in self.images:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return self.images[ref]

    def tag(self, image: str, repository: str, tag: str) -> None:
        self.tags.append((image, repository, tag))
        self.images[f"{repository}:{tag}"] = self.images[image]

    def get_image(self, ref: str, chunk_size: int) -> Iterator[bytes]:
        yield from (b"x" * 1000, b"y" * 500)

    def load_image(self, data: Iterator[bytes]) -> Iterator[dict[str, str]]:
        self.loaded.append(b"".join(data))
        self.images[REF] = {"Id": IMAGE_ID}
        self.images[IMAGE_ID] = {"Id": IMAGE_ID}
        yield {"stream": f"Loaded image: {REF}\n"}

    def pull(self, name: str, tag: str, stream: bool, decode: bool) -> Iterator[dict[str, str]]:
        yield {"error": self.pull_error or "pull access denied"}


class FakeImages:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api

    def get(self, ref: str) -> Any:
        data = self.api.inspect_image(ref)
        return type("Image", (), {"id": data["Id"], "labels": {}})()


class FakeClient:
    def __init__(self, images: dict[str, dict[str, Any]], docker_root: str = "/var/lib/docker") -> None:
        self.api = FakeAPI(images)
        self.images = FakeImages(self.api)
        self.docker_root = docker_root
        self.closed = False

    def info(self) -> dict[str, Any]:
        return {"DockerRootDir": self.docker_root, "Name": "fake"}

    def close(self) -> None:
        self.closed = True


class FakeTransport:
    host = "web1"

    def __init__(self, remote: FakeClient, free: int | None = 10 << 30) -> None:
        self.remote = remote
        self.free = free
        self.asked: list[str] = []

    def docker(self) -> FakeClient:
        return self.remote

    def free_space(self, path: str) -> int | None:
        self.asked.append(path)
        return self.free


def control() -> FakeClient:
    return FakeClient({REF: {"Id": IMAGE_ID, "Size": 1500}})


def test_ship_streams_save_into_load_and_reports_bytes() -> None:
    local, remote, said = control(), FakeClient({}), []
    shipped = ship_image(local, remote, REF, said.append, lambda p: 10 << 30)
    assert shipped.image_id == IMAGE_ID and shipped.bytes_sent == 1500
    assert remote.api.loaded == [b"x" * 1000 + b"y" * 500]
    assert said[0].startswith("shipping registry:2 (sha256:abababababab, ~0.0 MB) from the control machine")
    assert said[-1].startswith("shipped registry:2: 0.0 MB in ")


def test_same_image_id_under_another_name_only_gets_the_tag() -> None:
    remote = FakeClient({IMAGE_ID: {"Id": IMAGE_ID}})
    said: list[str] = []
    shipped = ship_image(control(), remote, REF, said.append)
    assert shipped.bytes_sent == 0 and remote.api.loaded == []
    assert remote.api.tags == [(IMAGE_ID, "registry", "2")]
    assert "tagged, nothing shipped" in said[0]


def test_not_enough_room_in_the_engine_is_disk_full() -> None:
    free = 1500 + DISK_MARGIN - 1
    with pytest.raises(ImageError, match=r"disk full: /data/docker on the host has .* free"):
        ship_image(control(), FakeClient({}, "/data/docker"), REF, lambda m: None, lambda p: free)


def test_image_absent_on_the_control_machine() -> None:
    with pytest.raises(ImageError, match="is not on the control machine's Docker engine"):
        ship_image(FakeClient({}), FakeClient({}), REF, lambda m: None)


def test_auto_ships_when_the_pull_fails() -> None:
    transport, local, said = FakeTransport(FakeClient({})), control(), []
    image = provide_image(transport, REF, "auto", said.append, lambda: local)  # type: ignore[arg-type]
    assert image == IMAGE_ID and transport.remote.api.loaded
    assert any("the host cannot pull registry:2: shipping it" in m for m in said)
    assert transport.asked == ["/var/lib/docker"] and local.closed


def test_auto_without_the_image_on_the_control_machine_says_both() -> None:
    transport = FakeTransport(FakeClient({}))
    with pytest.raises(ImageError, match=r"cannot be pulled .*; the control machine does not have it either"):
        provide_image(transport, REF, "auto", lambda m: None, lambda: FakeClient({}))  # type: ignore[arg-type]


def test_pull_never_ships_and_ship_never_pulls() -> None:
    transport = FakeTransport(FakeClient({}))
    with pytest.raises(ImageError, match="cannot be pulled"):
        provide_image(transport, REF, "pull", lambda m: None, control)  # type: ignore[arg-type]
    assert transport.remote.api.loaded == []
    assert provide_image(transport, REF, "ship", lambda m: None, control) == IMAGE_ID  # type: ignore[arg-type]


def test_image_source_setting() -> None:
    assert image_source({}, "web1") == "auto"
    assert image_source({"registry": {"image_source": "ship"}}, "web1") == "ship"
    with pytest.raises(SpecError, match=r"host 'web1': registry\.image_source: unknown value 'shipit'"):
        image_source({"registry": {"image_source": "shipit"}}, "web1")
