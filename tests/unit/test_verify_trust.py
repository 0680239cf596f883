"""When the Docker engine checks certificates, and lending it the CA through certs.d."""

from __future__ import annotations

import os

import pytest

from regdeploy.verify.model import CheckFailed
from regdeploy.verify.trust import ca_in_certs_d, insecure_because, split_host

DEFAULT = {
    "IndexConfigs": {"docker.io": {"Name": "docker.io", "Secure": True}},
    "InsecureRegistryCIDRs": ["127.0.0.0/8"],
}
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def fake_resolver(table: dict[str, list[str]]):
    return lambda host: table.get(host, [])


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ("localhost:5000", "localhost (127.0.0.1) is in the engine's insecure-registry range 127.0.0.0/8"),
        ("127.0.0.1:5000", "127.0.0.1 is in the engine's insecure-registry range 127.0.0.0/8"),
        ("172.17.0.1:5000", None),
        ("reg.example:443", None),
        ("[::1]:5000", None),  # the daemon's default range is IPv4 only
    ],
)
def test_loopback_names_are_insecure_by_default(registry, expected):
    resolver = fake_resolver(
        {
            "localhost": ["127.0.0.1"],
            "127.0.0.1": ["127.0.0.1"],
            "172.17.0.1": ["172.17.0.1"],
            "reg.example": ["10.1.2.3"],
            "::1": ["::1"],
        }
    )
    assert insecure_because(DEFAULT, registry, resolver) == expected


def test_index_configs_win_and_extra_ranges_count():
    config = {
        "IndexConfigs": {"reg.example:443": {"Secure": False}, "localhost:5000": {"Secure": True}},
        "InsecureRegistryCIDRs": ["127.0.0.0/8", "10.0.0.0/8", "not a cidr"],
    }
    resolver = fake_resolver({"localhost": ["127.0.0.1"], "other.example": ["10.9.9.9"]})
    assert (
        insecure_because(config, "reg.example:443", resolver)
        == "reg.example:443 is in the engine's insecure-registries"
    )
    assert insecure_because(config, "localhost:5000", resolver) is None
    assert "10.0.0.0/8" in (insecure_because(config, "other.example:5000", resolver) or "")
    assert insecure_because(config, "unresolvable:5000", resolver) is None


def test_split_host():
    assert split_host("localhost:5000") == "localhost"
    assert split_host("[::1]:5000") == "::1"
    assert split_host("reg.example") == "reg.example"


def test_missing_ca_is_added_then_removed_with_the_directories_it_needed(tmp_path):
    root = tmp_path / "etc" / "docker" / "certs.d"
    (tmp_path / "etc").mkdir()
    with ca_in_certs_d("reg:5000", CA, root) as trust:
        target = root / "reg:5000" / "ca.crt"
        assert target.read_bytes() == CA
        assert oct(target.stat().st_mode & 0o777) == "0o644"
        assert trust.file == target and "put in" in trust.note
    assert trust.left_behind is None
    assert not (tmp_path / "etc" / "docker").exists()
    assert (tmp_path / "etc").exists()


def test_removed_even_when_the_block_fails(tmp_path):
    with pytest.raises(RuntimeError), ca_in_certs_d("reg:5000", CA, tmp_path / "certs.d"):
        raise RuntimeError("push crashed")
    assert not (tmp_path / "certs.d").exists()


def test_existing_directory_with_other_files_is_kept(tmp_path):
    entry = tmp_path / "reg:5000"
    entry.mkdir()
    (entry / "client.cert").write_text("x")
    with ca_in_certs_d("reg:5000", CA, tmp_path):
        assert (entry / "ca.crt").exists()
    assert sorted(os.listdir(entry)) == ["client.cert"]


def test_existing_ca_is_never_touched(tmp_path):
    entry = tmp_path / "reg:5000"
    entry.mkdir()
    (entry / "ca.crt").write_bytes(CA.replace(b"\n", b"\r\n") + b"\n")
    with ca_in_certs_d("reg:5000", CA, tmp_path) as trust:
        assert trust.note == f"trusted through the existing {entry / 'ca.crt'}"
    (entry / "ca.crt").write_bytes(b"another CA")
    with ca_in_certs_d("reg:5000", CA, tmp_path) as trust:
        assert trust.note == f"{entry / 'ca.crt'} holds another CA than the inventory's (left as it is)"
    assert (entry / "ca.crt").read_bytes() == b"another CA"


def test_a_file_in_the_way_is_a_check_failure(tmp_path):
    (tmp_path / "certs.d").write_text("not a directory")
    expected = r"cannot read .*/certs\.d/reg:5000/ca\.crt: Not a directory"
    with pytest.raises(CheckFailed, match=expected), ca_in_certs_d("reg:5000", CA, tmp_path / "certs.d"):
        pass
    assert (tmp_path / "certs.d").read_text() == "not a directory"


def test_a_directory_that_cannot_be_made_is_a_check_failure(tmp_path):
    (tmp_path / "reg:5000").symlink_to(tmp_path / "nowhere")  # dangling: reads say absent, mkdir says exists
    expected = r"cannot give the engine the inventory's CA at .*ca\.crt: File exists"
    with pytest.raises(CheckFailed, match=expected), ca_in_certs_d("reg:5000", CA, tmp_path):
        pass
    assert (tmp_path / "reg:5000").is_symlink()
