"""The Docker Engine API over an SSH connection regdeploy already holds: no second login per host.

docker-py's own ``ssh://`` transport opens a separate paramiko connection (and re-reads
~/.ssh/config its own way). Instead each HTTP connection here is one channel of the host's existing
SSH transport:

* ``direct-streamlocal@openssh.com`` to the engine's unix socket (OpenSSH's ``ssh -L local:/sock``):
  no process is started on the host, one round trip per connection;
* or, where that is impossible (the socket needs root and the user becomes root with sudo; sshd
  forbids stream forwarding), an exec channel running ``[sudo -n] docker system dial-stdio``.

Facts need two inspect calls: :class:`ChannelEngine` makes them with http.client, so an idempotent
run never imports docker-py; :mod:`.sdkchannel` gives the SDK the same channels when something must
change. Both keep their HTTP connection alive: each usually uses one channel for the whole run.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from typing import Any, cast

import paramiko
from paramiko.common import cMSG_CHANNEL_OPEN, cMSG_IGNORE
from paramiko.message import Message

from regdeploy.errors import TransportError
from regdeploy.transport.engine_api import HttpEngine

ChannelOpener = Callable[[float], paramiko.Channel]


class StreamlocalTransport(paramiko.Transport):
    """paramiko's Transport plus the OpenSSH channel type that connects to a unix socket on the
    server, and an answer to global requests that keeps the first command of a connection fast."""

    def _parse_global_request(self, m: Message) -> None:
        want_reply = _wants_reply(m)
        super()._parse_global_request(m)  # type: ignore[misc]  # paramiko-internal, no stub
        if not want_reply and not self.server_mode:
            # OpenSSH sends "hostkeys-00@openssh.com" just after authentication and wants no reply.
            # Sending nothing leaves our ACK of it to the delayed-ACK timer (40 ms), and sshd, held
            # by Nagle's algorithm until that ACK, sits on its answer to our first channel open: every
            # connection's first command paid 40 ms. An empty IGNORE message carries the ACK now.
            ignore = Message()
            ignore.add_byte(cMSG_IGNORE)
            ignore.add_string(b"")
            cast(Any, self)._send_message(ignore)

    def open_streamlocal(self, socket_path: str, timeout: float) -> paramiko.Channel:
        """A channel connected to *socket_path* on the server (as the login user).

        paramiko's open_channel() only knows the TCP and X11 channel kinds, whose extra fields differ;
        this is its body with the fields of ``direct-streamlocal@openssh.com`` (OpenSSH PROTOCOL 2.4:
        socket path, reserved string, reserved uint32). Raises paramiko.ChannelException when the
        server refuses (no such socket, permission denied, forwarding disabled).
        """
        if not self.is_active():
            raise paramiko.SSHException("SSH session not active")
        this = cast(Any, self)  # the channel bookkeeping below is paramiko-internal (stable since 1.x)
        with self.lock:
            window_size = this._sanitize_window_size(None)
            max_packet_size = this._sanitize_packet_size(None)
            chanid = this._next_channel()
            m = Message()
            m.add_byte(cMSG_CHANNEL_OPEN)
            m.add_string("direct-streamlocal@openssh.com")
            m.add_int(chanid)
            m.add_int(window_size)
            m.add_int(max_packet_size)
            m.add_string(socket_path)
            m.add_string("")
            m.add_int(0)
            chan = paramiko.Channel(chanid)
            this._channels.put(chanid, chan)
            self.channel_events[chanid] = event = threading.Event()
            self.channels_seen[chanid] = True
            this_chan = cast(Any, chan)
            this_chan._set_transport(self)
            this_chan._set_window(window_size, max_packet_size)
        this._send_user_message(m)
        if not event.wait(timeout):
            raise paramiko.SSHException(f"timeout opening a channel to {socket_path}")
        opened = this._channels.get(chanid)
        if opened is not None:
            return cast(paramiko.Channel, opened)
        error = self.get_exception()
        raise error if error is not None else paramiko.SSHException("unable to open channel")


def _wants_reply(m: Message) -> bool:
    """The want-reply flag of a global request (name, then flag), read from a copy of *m*."""
    copy = Message(m.asbytes())
    copy.get_string()
    return bool(copy.get_boolean())


class FirstThenOpen:
    """A channel opener that hands out an already-open channel first (the one used to probe the
    engine), so the probe's round trip is not wasted."""

    def __init__(self, opener: ChannelOpener, first: paramiko.Channel | None) -> None:
        self._opener = opener
        self._first = first
        self._lock = threading.Lock()

    def __call__(self, timeout: float) -> paramiko.Channel:
        with self._lock:
            first, self._first = self._first, None
        if first is not None and not first.closed:
            first.settimeout(timeout)
            return first
        chan = self._opener(timeout)
        chan.settimeout(timeout)
        return chan


class _ChannelHTTPConnection(http.client.HTTPConnection):
    def __init__(self, opener: ChannelOpener, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._opener = opener

    def connect(self) -> None:
        self.sock = cast(Any, self._opener(float(cast(float, self.timeout))))


ENGINE_ERRORS = (OSError, EOFError, http.client.HTTPException, paramiko.SSHException)


class ChannelEngine(HttpEngine):
    """The Engine API over SSH channels (a forwarded docker.sock, or `docker system
    dial-stdio`)."""

    def __init__(self, host: str, opener: ChannelOpener, timeout: float) -> None:
        super().__init__(host, _ChannelHTTPConnection(opener, timeout))

    def ping(self) -> str:
        """The engine's API version (``Api-Version`` of ``GET /_ping``); "" when it does not say."""
        status, headers, body = self.request("/_ping")
        if status != 200:
            raise http.client.HTTPException(f"GET /_ping answered {status}: {body[:100]!r}")
        return headers.get("api-version", "")

    def _fetch(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        try:
            return super()._fetch(method, path, body)
        except ENGINE_ERRORS as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise TransportError(
                f"{self._host}: lost the connection to the Docker engine: {reason}"
            ) from None
