"""The token server's file: the contract's keys, and one line naming file and key for each mistake."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
import yaml
from click.testing import CliRunner

from regdeploy.cli import cli
from regdeploy.errors import InputError
from regdeploy.pki.build import issue_server_cert, make_ca
from regdeploy.pki.keys import generate_key
from regdeploy.tokens.acl import AclEntry
from regdeploy.tokens.config import TlsFiles, load_config, parse_config
from regdeploy.tokens.oidc import OidcProvider

CONTRACT = """
service: "reg1:5000"
issuer: "regdeploy-token"
expiry: 300
listen: {bind: "0.0.0.0", port: 5001}
tls: {cert: /etc/regdeploy-token/server.crt, key: /etc/regdeploy-token/server.key}
signing: {key: /etc/regdeploy-token/signing.key, chain: /etc/regdeploy-token/signing.crt}
users: /etc/regdeploy-token/users
anonymous: false
acl:
  - {account: admin, name: "*", actions: ["*"]}
  - {account: "", name: "public/*", actions: [pull]}
  - {account: "*", name: "${account}/*", actions: [pull, push, delete]}
  - {account: "*", type: registry, name: catalog, actions: ["*"]}
oidc:
  - issuer: https://token.actions.githubusercontent.com
    jwks: /etc/regdeploy-token/oidc-0.json
    audience: reg.example.com
    account: "${claims.repository}"
    claims: {repository_owner: acme}
"""


def parse(text: str, base: Path | None = None):
    return parse_config(yaml.safe_load(text), "token.yml", base)


def with_(**changes):
    data = yaml.safe_load(CONTRACT)
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split("__")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is ...:
            del target[int(last) if isinstance(target, list) else last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return parse_config(data, "token.yml")


def test_the_contract_parses():
    c = parse(CONTRACT)
    assert (c.service, c.issuer, c.expiry, c.bind, c.port, c.anonymous) == (
        "reg1:5000", "regdeploy-token", 300, "0.0.0.0", 5001, False,
    )  # fmt: skip
    assert c.tls == TlsFiles(Path("/etc/regdeploy-token/server.crt"), Path("/etc/regdeploy-token/server.key"))
    assert c.signing.chain == Path("/etc/regdeploy-token/signing.crt")
    assert c.users == Path("/etc/regdeploy-token/users")
    assert c.acl == (
        AclEntry("admin", "*", ("*",)),
        AclEntry("", "public/*", ("pull",)),
        AclEntry("*", "${account}/*", ("pull", "push", "delete")),
        AclEntry("*", "catalog", ("*",), type="registry"),
    )
    assert c.oidc == (
        OidcProvider(
            issuer="https://token.actions.githubusercontent.com",
            jwks=Path("/etc/regdeploy-token/oidc-0.json"),
            audience="reg.example.com",
            account="${claims.repository}",
            claims=(("repository_owner", "acme"),),
        ),
    )


def test_minimal_file_and_defaults(tmp_path):
    c = parse("service: s\nissuer: i\nsigning: {key: k.pem, chain: c.pem}\n", tmp_path)
    assert c.signing.key == tmp_path / "k.pem"  # relative to the file's directory
    assert (c.expiry, c.port, c.tls, c.users, c.anonymous, c.acl, c.oidc) == (
        300,
        5001,
        None,
        None,
        False,
        (),
        (),
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"servce": "x"}, "token.yml: servce: unknown key (did you mean 'service'?)"),
        ({"listen__host": "x"}, "token.yml: listen.host: unknown key"),
        ({"service": ...}, "token.yml: service: is required"),
        ({"service": 5000}, "token.yml: service: must be a non-empty string, got integer 5000"),
        ({"signing": ...}, "token.yml: signing: is required"),
        ({"signing__chain": ...}, "token.yml: signing.chain: is required"),
        ({"tls__key": ...}, "token.yml: tls.key: is required"),
        ({"expiry": 59}, "token.yml: expiry: 59 is out of range 60..86400"),
        ({"expiry": 86401}, "token.yml: expiry: 86401 is out of range 60..86400"),
        ({"expiry": "5m"}, "token.yml: expiry: must be an integer, got string '5m'"),
        ({"listen__port": 0}, "token.yml: listen.port: 0 is out of range 1..65535"),
        ({"listen__port": 70000}, "token.yml: listen.port: 70000 is out of range 1..65535"),
        ({"listen__bind": "localhost"}, "token.yml: listen.bind: must be an IP address"),
        ({"anonymous": "yes"}, "token.yml: anonymous: must be true or false"),
        ({"acl": {"a": 1}}, "token.yml: acl: must be a list"),
        (
            {"acl__1__actions": ["pul"]},
            "token.yml: acl[1].actions[0]: unknown action 'pul' (did you mean 'pull'?)",
        ),
        ({"acl__1__actions": "pull"}, "token.yml: acl[1].actions: is required: a list"),
        (
            {"acl__3__actions": ["pull"]},
            "token.yml: acl[3].actions[0]: unknown action 'pull'; registry entries allow *",
        ),
        ({"acl__0__name": ...}, "token.yml: acl[0].name: is required"),
        ({"acl__0__verbs": ["pull"]}, "token.yml: acl[0].verbs: unknown key"),
        ({"acl__0__type": "repo"}, "token.yml: acl[0].type: unknown type 'repo'"),
        (
            {"acl__2__name": "${user}/*"},
            "token.yml: acl[2].name: unknown variable '${user}'; only ${account}",
        ),
        ({"acl__2__name": "${account/*"}, "token.yml: acl[2].name: unclosed '${'"),
        ({"acl__0": "admin"}, "token.yml: acl[0]: must be a mapping, got string"),
        ({"oidc__0__issuer": "http://token.example"}, "token.yml: oidc[0].issuer: must be an https:// URL"),
        (
            {"oidc__0__account": "${claim.repository}"},
            "token.yml: oidc[0].account: unknown variable '${claim.repository}'; only ${claims.NAME}",
        ),
        ({"oidc__0__account": "${account}"}, "token.yml: oidc[0].account: unknown variable '${account}'"),
        ({"oidc__0__audience": ...}, "token.yml: oidc[0].audience: is required"),
        ({"oidc__0__jwks": ...}, "token.yml: oidc[0].jwks: is required"),
        ({"oidc__0__claims": ["a"]}, "token.yml: oidc[0].claims: must be a mapping"),
        ({"oidc__0__claims": {"owner": ["a"]}}, "token.yml: oidc[0].claims.owner: must be a string"),
        ({"oidc__0__url": "x"}, "token.yml: oidc[0].url: unknown key"),
    ],
)
def test_mistakes_name_file_and_key(changes, message):
    with pytest.raises(InputError) as caught:
        with_(**changes)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_lenient_where_the_inventory_is():
    # what `up` may render must start: account defaults to "*", ${account} for "" never matches
    c = with_(acl__0__account=..., acl__1__name="${account}/*")
    assert c.acl[0].account == "*"
    assert c.acl[1] == AclEntry("", "${account}/*", ("pull",))
    assert with_(oidc__0__account="${claims.job.owner}").oidc[0].account == "${claims.job.owner}"


def test_claim_values_may_be_scalars():
    c = with_(oidc__0__claims={"run_attempt": 1, "ok": True, "ref": "refs/heads/*"})
    assert c.oidc[0].claims == (("run_attempt", "1"), ("ok", "true"), ("ref", "refs/heads/*"))


def test_empty_or_bad_files(tmp_path):
    path = tmp_path / "token.yml"
    with pytest.raises(InputError, match=r"token.yml: token server configuration file not found"):
        load_config(path)
    path.write_text("")
    with pytest.raises(InputError, match=r"token.yml: \(top level\): the file is empty"):
        load_config(path)
    path.write_text("service: [\n")
    with pytest.raises(InputError, match=r"token.yml:\d+: invalid YAML"):
        load_config(path)
    path.write_text("- a\n")
    with pytest.raises(InputError, match=r"token.yml: \(top level\): must be a mapping, got list"):
        load_config(path)


# --- auth serve --check --------------------------------------------------------------------------


@pytest.fixture
def served_files(tmp_path):
    ca_key = generate_key()
    ca = make_ca(ca_key)
    signing_key, tls_key = generate_key(), generate_key()
    (tmp_path / "signing.key").write_bytes(signing_key)
    (tmp_path / "signing.crt").write_bytes(issue_server_cert(ca, ca_key, signing_key, ["token-signer"]) + ca)
    (tmp_path / "server.key").write_bytes(tls_key)
    (tmp_path / "server.crt").write_bytes(issue_server_cert(ca, ca_key, tls_key, ["127.0.0.1"]))
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    (tmp_path / "users").write_text(f"alice:{hashed}\nbob:{hashed}\n")
    config = yaml.safe_load(CONTRACT)
    config["tls"] = {"cert": "server.crt", "key": "server.key"}
    config["signing"] = {"key": "signing.key", "chain": "signing.crt"}
    config["users"] = "users"
    del config["oidc"]
    (tmp_path / "token.yml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_check_prints_a_summary(served_files):
    result = CliRunner().invoke(
        cli, ["auth", "serve", "--config", str(served_files / "token.yml"), "--check"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"{served_files / 'token.yml'}: ok"
    assert "service reg1:5000, issuer regdeploy-token, tokens valid 300s" in result.output
    assert "listen https://0.0.0.0:5001" in result.output
    assert "chain of 2 certificates" in result.output
    assert "2 users" in result.output
    assert "4 acl entries" in result.output


def test_check_fails_with_exit_2_naming_the_file(served_files):
    (served_files / "server.key").write_bytes(generate_key())  # not the certificate's key
    result = CliRunner().invoke(cli, ["auth", "serve", "-c", str(served_files / "token.yml"), "--check"])
    assert result.exit_code == 2
    assert "server.crt: TLS certificate and key" in result.output
    (served_files / "users").write_text(":x\n")
    result = CliRunner().invoke(cli, ["auth", "serve", "-c", str(served_files / "token.yml"), "--check"])
    assert result.exit_code == 2
    assert f"{served_files / 'users'}: entry 1: expected NAME:BCRYPT_HASH" in result.output
