"""The token server's configuration file (YAML), validated with the file and key path in every message.

regdeploy renders it; it is also the contract for running the server by hand:

    service: "reg1:5000"           # the registry's auth.token.service: the tokens' aud
    issuer: regdeploy-token        # the tokens' iss (the registry's auth.token.issuer)
    expiry: 300                    # token lifetime, seconds
    listen: {bind: 0.0.0.0, port: 5001}
    tls: {cert: server.crt, key: server.key}        # omitted: plain HTTP (tests only)
    signing: {key: signing.key, chain: signing.crt}  # EC P-256; chain = leaf first, then CA(s)
    users: users                   # NAME:BCRYPT lines, re-read when the file changes
    anonymous: false               # true: no credentials = the account ""
    acl:                           # ordered, first match wins, default deny
      - {account: "*", name: "${account}/*", actions: [pull, push, delete]}
    oidc:
      - {issuer: https://token.actions.githubusercontent.com, jwks: oidc-0.json,
         audience: reg.example.com, account: "${claims.repository}", claims: {repository_owner: acme}}

Relative paths are relative to the file's directory.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from regdeploy.errors import InputError
from regdeploy.spec.filekeys import FileKey as _Key
from regdeploy.spec.filekeys import mapping as _mapping
from regdeploy.spec.validate import integer as _integer
from regdeploy.spec.validate import suggest, type_name
from regdeploy.tokens.acl import ACCOUNT_VARIABLE, AclEntry
from regdeploy.tokens.oidc import CLAIM_VARIABLE_RE, OidcProvider
from regdeploy.tokens.scope import REGISTRY, REPOSITORY

DEFAULT_PORT = 5001
DEFAULT_EXPIRY = 300
MIN_EXPIRY = 60  # clients raise a shorter expires_in to 60 s anyway: a shorter token only confuses
MAX_EXPIRY = 86400
REPOSITORY_ACTIONS = ("pull", "push", "delete", "*")
REGISTRY_ACTIONS = ("*",)
_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
_TOP_KEYS = ("service", "issuer", "expiry", "listen", "tls", "signing", "users", "anonymous", "acl", "oidc")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class SigningFiles:
    key: Path
    chain: Path


@dataclass(frozen=True)
class TokenConfig:
    source: str
    service: str
    issuer: str
    signing: SigningFiles
    expiry: int = DEFAULT_EXPIRY
    bind: str = "0.0.0.0"  # the server runs in a container whose port is published
    port: int = DEFAULT_PORT
    tls: TlsFiles | None = None
    users: Path | None = None
    anonymous: bool = False
    acl: tuple[AclEntry, ...] = ()
    oidc: tuple[OidcProvider, ...] = ()


def _string(value: Any, key: _Key, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty_ok):
        if value is None:
            key.fail("is required")
        key.fail(f"must be a non-empty string, got {type_name(value)} {value!r}")
    return value


def _path(value: Any, key: _Key, base: Path | None) -> Path:
    path = Path(_string(value, key)).expanduser()
    return base / path if base is not None and not path.is_absolute() else path


def _variables(text: str, key: _Key, allowed: str, check: re.Pattern[str] | None) -> None:
    if text.count("${") != len(_VARIABLE_RE.findall(text)):
        key.fail(f"unclosed '${{' in {text!r}")
    for match in _VARIABLE_RE.finditer(text):
        if (check is None and match.group(0) != ACCOUNT_VARIABLE) or (
            check is not None and not check.fullmatch(match.group(0))
        ):
            key.fail(f"unknown variable {match.group(0)!r}; only {allowed} is allowed here")


def _acl_entry(raw: Any, key: _Key) -> AclEntry:
    if not isinstance(raw, Mapping):
        key.fail(f"must be a mapping, got {type_name(raw)}")
    data = _mapping(raw, key, ("account", "type", "name", "actions"))
    # Absent is "*", any signed-in account, as in the inventory (regdeploy/spec/token.py).
    account = _string(data.get("account", "*"), key.child("account"), empty_ok=True)
    kind = data.get("type", REPOSITORY)
    if kind not in (REPOSITORY, REGISTRY):
        hint = suggest(str(kind), (REPOSITORY, REGISTRY))
        key.child("type").fail(f"unknown type {kind!r}{hint}; expected repository or registry")
    if data.get("name") is None:
        key.child("name").fail("is required: a glob over repository names (registry: catalog)")
    name = _string(data["name"], key.child("name"))
    # ${account} in an entry for "" is accepted and never matches (the anonymous account has no
    # namespace): the inventory allows it, and the server must start on whatever `up` rendered.
    _variables(name, key.child("name"), ACCOUNT_VARIABLE, None)
    raw_actions = data.get("actions")
    if not isinstance(raw_actions, list):
        key.child("actions").fail("is required: a list of pull, push, delete or * ([] denies)")
    allowed = REGISTRY_ACTIONS if kind == REGISTRY else REPOSITORY_ACTIONS
    actions: list[str] = []
    for i, action in enumerate(raw_actions):
        if action not in allowed:
            hint = suggest(str(action), allowed)
            key.child("actions").child(i).fail(
                f"unknown action {action!r}{hint}; {kind} entries allow {', '.join(allowed)}"
            )
        if action not in actions:
            actions.append(action)
    return AclEntry(account=account, name=name, actions=tuple(actions), type=kind)


def _claim_value(value: Any, key: _Key) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"  # as the token's JSON spells it
    if isinstance(value, int):
        return str(value)
    key.fail(f"must be a string (exact value or glob), got {type_name(value)} {value!r}")


def _oidc_entry(raw: Any, key: _Key, base: Path | None) -> OidcProvider:
    if not isinstance(raw, Mapping):
        key.fail(f"must be a mapping, got {type_name(raw)}")
    data = _mapping(raw, key, ("issuer", "jwks", "audience", "account", "claims"))
    issuer = _string(data.get("issuer"), key.child("issuer"))
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.netloc:
        key.child("issuer").fail(f"must be an https:// URL (the token's iss), got {issuer!r}")
    account = _string(data.get("account"), key.child("account"))
    _variables(account, key.child("account"), "${claims.NAME}", CLAIM_VARIABLE_RE)
    raw_claims = data.get("claims")
    if raw_claims is not None and not isinstance(raw_claims, Mapping):
        key.child("claims").fail(
            f"must be a mapping of claim name to required value, got {type_name(raw_claims)}"
        )
    claims = tuple(
        (_string(name, key.child("claims")), _claim_value(value, key.child("claims").child(str(name))))
        for name, value in (raw_claims or {}).items()
    )
    return OidcProvider(
        issuer=issuer,
        jwks=_path(data.get("jwks"), key.child("jwks"), base),
        audience=_string(data.get("audience"), key.child("audience")),
        account=account,
        claims=claims,
    )


def _bind(value: Any, key: _Key) -> str:
    text = _string(value, key)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        key.fail(f"must be an IP address (0.0.0.0 for every interface), got {text!r}")
    return text


def _list(value: Any, key: _Key) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        key.fail(f"must be a list, got {type_name(value)}")
    return value


def parse_config(raw: Any, source: str, base_dir: Path | None = None) -> TokenConfig:
    """Validate a parsed token server file."""
    top = _Key(source)
    data = _mapping(raw, top, _TOP_KEYS)
    if not isinstance(raw, Mapping):
        top.fail("the file is empty: service, issuer and signing are required")
    listen = _mapping(data.get("listen"), top.child("listen"), ("bind", "port"))
    if data.get("signing") is None:
        top.child("signing").fail("is required: {key: PEM EC P-256 key, chain: its certificate, then CA}")
    signing = _mapping(data["signing"], top.child("signing"), ("key", "chain"))
    tls = None
    if data.get("tls") is not None:
        raw_tls = _mapping(data["tls"], top.child("tls"), ("cert", "key"))
        tls = TlsFiles(
            cert=_path(raw_tls.get("cert"), top.child("tls").child("cert"), base_dir),
            key=_path(raw_tls.get("key"), top.child("tls").child("key"), base_dir),
        )
    anonymous = data.get("anonymous", False)
    if not isinstance(anonymous, bool):
        top.child("anonymous").fail(f"must be true or false, got {type_name(anonymous)} {anonymous!r}")
    acl_key, oidc_key = top.child("acl"), top.child("oidc")
    return TokenConfig(
        source=source,
        service=_string(data.get("service"), top.child("service")),
        issuer=_string(data.get("issuer"), top.child("issuer")),
        signing=SigningFiles(
            key=_path(signing.get("key"), top.child("signing").child("key"), base_dir),
            chain=_path(signing.get("chain"), top.child("signing").child("chain"), base_dir),
        ),
        expiry=_integer(data.get("expiry", DEFAULT_EXPIRY), top.child("expiry"), MIN_EXPIRY, MAX_EXPIRY),
        bind=_bind(listen.get("bind", "0.0.0.0"), top.child("listen").child("bind")),
        port=_integer(listen.get("port", DEFAULT_PORT), top.child("listen").child("port"), 1, 65535),
        tls=tls,
        users=_path(data["users"], top.child("users"), base_dir) if data.get("users") is not None else None,
        anonymous=anonymous,
        acl=tuple(_acl_entry(e, acl_key.child(i)) for i, e in enumerate(_list(data.get("acl"), acl_key))),
        oidc=tuple(
            _oidc_entry(e, oidc_key.child(i), base_dir)
            for i, e in enumerate(_list(data.get("oidc"), oidc_key))
        ),
    )


def read_config_file(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: token server configuration file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None


def load_config(path: Path) -> TokenConfig:
    return parse_config(read_config_file(path), str(path), path.parent)
