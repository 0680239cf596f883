"""The token endpoint as a WSGI application: request in, JSON out, one log line per request.

``GET /token?service=S&scope=...`` with Basic credentials is the docker CLI's flow; containerd and
buildkit first ``POST /token`` a form (``grant_type=password``) and fall back to GET when refused.
Refresh tokens are not issued (``offline_token`` is accepted and ignored): a client simply asks
again with its credentials when the token expires.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from regdeploy.tokens.acl import ANONYMOUS, AclEntry, authorize
from regdeploy.tokens.issue import Signing, issue_token, rfc3339
from regdeploy.tokens.oidc import OidcRefused, OidcVerifier
from regdeploy.tokens.scope import Scope, parse_scopes
from regdeploy.tokens.users import UserFile

MAX_BODY_BYTES = 16 * 1024  # a token request form is a few hundred bytes
MAX_FIELDS = 64
REALM = "regdeploy-token"
_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")
_LOG_FIELD_MAX = 128

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Response:
    status: int
    body: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class Refused(Exception):
    """A request answered with an error: its status, body and the log line's reason."""

    def __init__(self, response: Response, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


_STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


def printable(text: str, limit: int = _LOG_FIELD_MAX) -> str:
    """*text* safe for one log line: no spaces, controls or escapes a client could inject."""
    clean = _UNPRINTABLE.sub("?", text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def registry_error(status: int, code: str, message: str, *headers: tuple[str, str]) -> Response:
    return Response(status, {"errors": [{"code": code, "message": message}]}, headers)


def oauth_error(error: str, description: str) -> Response:
    # RFC 6749 5.2 for the POST flow: containerd reads "error", and falls back to GET on 400.
    return Response(400, {"error": error, "error_description": description})


def unauthorized(message: str) -> Response:
    return registry_error(401, "UNAUTHORIZED", message, ("WWW-Authenticate", f'Basic realm="{REALM}"'))


@dataclass(frozen=True)
class Identity:
    account: str  # "" is the anonymous account
    label: str  # for the log: alice | anonymous | oidc:acme/app


ANONYMOUS_IDENTITY = Identity(ANONYMOUS, "anonymous")


class TokenApp:
    def __init__(
        self,
        *,
        service: str,
        issuer: str,
        expiry: int,
        anonymous: bool,
        acl: Sequence[AclEntry],
        signing: Signing,
        users: UserFile | None,
        oidc: OidcVerifier,
        log: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.issuer = issuer
        self.expiry = expiry
        self.anonymous = anonymous
        self.acl = tuple(acl)
        self.signing = signing
        self.users = users
        self.oidc = oidc
        self._log = log
        self._clock = clock

    # --- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ: Mapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self.handle(environ)
        except Exception as exc:  # a bug: answer 500, log its type only (never request data)
            self._log(f"token server: internal error ({type(exc).__name__})")
            response = registry_error(500, "UNKNOWN", "internal error")
        body = json.dumps(response.body).encode()
        headers = [
            ("Content-Type", _JSON),
            ("Content-Length", str(len(body))),
            # RFC 6749 5.1: a token answer must not be cached by anything in between.
            ("Cache-Control", "no-store"),
            ("Pragma", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
            *response.headers,
        ]
        start_response(f"{response.status} {_STATUS_TEXT.get(response.status, '')}".rstrip(), headers)
        return [body]

    def handle(self, environ: Mapping[str, Any]) -> Response:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path == "/healthz" and method == "GET":
            return Response(200, {"status": "ok"})
        if path != "/token":
            return registry_error(404, "NOT_FOUND", "the token endpoint is /token")
        try:
            if method == "GET":
                return self._get(environ)
            if method == "POST":
                return self._post(environ)
        except Refused as refused:
            self._log(f"token: refused ({refused.reason})")
            return refused.response
        return registry_error(405, "UNSUPPORTED", "use GET or POST", ("Allow", "GET, POST"))

    # --- the two flows ---------------------------------------------------------------------------

    def _get(self, environ: Mapping[str, Any]) -> Response:
        params = _parse_form(environ.get("QUERY_STRING", ""))
        self._check_service(params, oauth=False)
        credentials = _basic_credentials(environ.get("HTTP_AUTHORIZATION"))
        # "account" is only the client's echo of the Basic user name: the credentials decide.
        identity = self._authenticate(*credentials) if credentials else self._anonymous()
        return self._grant(identity, params.get("scope", []), "GET")

    def _post(self, environ: Mapping[str, Any]) -> Response:
        content_type = str(environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()
        if content_type != _FORM:
            raise Refused(oauth_error("invalid_request", f"the body must be {_FORM}"), "POST not a form")
        form = _parse_form(_read_body(environ))
        grant = _one(form, "grant_type")
        if grant != "password":
            # refresh_token is the other grant clients send; not implemented, so no refresh_token is
            # ever issued and containerd falls back to GET with its credentials.
            raise Refused(
                oauth_error("unsupported_grant_type", "only grant_type=password is supported"),
                f"unsupported grant_type {printable(grant or '(none)')}",
            )
        self._check_service(form, oauth=True)
        username, password = _one(form, "username"), _one(form, "password")
        if not username or not password:
            raise Refused(
                oauth_error("invalid_request", "username and password are required"), "no credentials"
            )
        return self._grant(self._authenticate(username, password), form.get("scope", []), "POST")

    # --- steps -----------------------------------------------------------------------------------

    def _check_service(self, params: Mapping[str, list[str]], oauth: bool) -> None:
        service = _one(params, "service")
        if service == self.service:
            return
        message = f"unknown service; this token server serves {self.service!r}"
        response = (
            oauth_error("invalid_request", message)
            if oauth
            else registry_error(400, "INVALID_REQUEST", message)
        )
        raise Refused(response, f"wrong service {printable(service or '(none)')}")

    def _anonymous(self) -> Identity:
        if not self.anonymous:
            raise Refused(unauthorized("authentication required"), "no credentials, anonymous access is off")
        return ANONYMOUS_IDENTITY

    def _authenticate(self, username: str, password: str) -> Identity:
        if self.oidc.handles(password):
            try:
                account = self.oidc.verify(password)
            except OidcRefused as exc:
                raise Refused(unauthorized("invalid OIDC token"), f"OIDC token: {exc}") from None
            return Identity(account, f"oidc:{printable(account)}")
        if self.users is not None and self.users.check(username, password):
            return Identity(username, printable(username))
        raise Refused(
            unauthorized("invalid user name or password"), f"bad credentials for {printable(username)}"
        )

    def _grant(self, identity: Identity, scope_params: Sequence[str], flow: str) -> Response:
        requested = parse_scopes(scope_params)
        granted = authorize(self.acl, identity.account, requested)
        now = int(self._clock())
        token = issue_token(
            self.signing,
            issuer=self.issuer,
            service=self.service,
            account=identity.account,
            access=granted,
            expiry=self.expiry,
            now=now,
        )
        asked = _scopes_text(requested, "(login)")
        self._log(f"token: {flow} {identity.label} {asked} -> granted {_granted_text(granted)}")
        return Response(
            200, {"token": token, "access_token": token, "expires_in": self.expiry, "issued_at": rfc3339(now)}
        )


def _scopes_text(scopes: Sequence[Scope], empty: str) -> str:
    return " ".join(printable(str(s)) for s in scopes) or empty


def _granted_text(granted: Sequence[Scope]) -> str:
    return _scopes_text([s for s in granted if s.actions], "nothing")


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _parse_form(text: str) -> dict[str, list[str]]:
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise Refused(
            registry_error(400, "INVALID_REQUEST", "too many parameters"), "too many parameters"
        ) from None


def _read_body(environ: Mapping[str, Any]) -> str:
    raw_length = environ.get("CONTENT_LENGTH") or ""
    try:
        length = int(raw_length) if raw_length else None
    except ValueError:
        raise Refused(
            registry_error(400, "INVALID_REQUEST", "bad Content-Length"), "bad Content-Length"
        ) from None
    too_big = Refused(
        registry_error(413, "SIZE_INVALID", f"the body is limited to {MAX_BODY_BYTES} bytes"),
        "body too large",
    )
    if length is not None and length > MAX_BODY_BYTES:
        raise too_big
    data = environ["wsgi.input"].read(MAX_BODY_BYTES + 1 if length is None else length)
    if len(data) > MAX_BODY_BYTES:
        raise too_big
    try:
        return str(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise Refused(oauth_error("invalid_request", "the body is not UTF-8"), "body not UTF-8") from None


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header; None when there is none (or it is
    empty, as some clients send for anonymous access)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    malformed = Refused(unauthorized("malformed Basic credentials"), "malformed credentials")
    if scheme.lower() != "basic":
        raise malformed
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise malformed from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise malformed
    if not username and not password:
        return None
    return username, password
