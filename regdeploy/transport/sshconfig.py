"""Where and how to reach a host over SSH: Ansible's connection variables layered over ``~/.ssh/config``.

The layering is Ansible's (its ssh plugin hands ``ansible_host`` to ``ssh``, which looks it up in
``ssh_config``; ``ansible_port``/``ansible_user``/the key file are passed as options and win):

* the ``Host`` pattern is matched against ``ansible_host`` (or the inventory name);
* ``HostName`` replaces that address, ``Port``/``User`` apply unless the inventory sets them;
* ``IdentityFile`` adds to ``ansible_ssh_private_key_file``; ``ProxyJump`` chains through jump hosts.

Pure apart from reading the config file; every result is a :class:`SshTarget`.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from regdeploy.errors import InputError, TransportError
from regdeploy.transport.hostvars import VAR_ACCEPT_NEW, VAR_CLI_TIMEOUT

if TYPE_CHECKING:
    import paramiko

DEFAULT_TIMEOUT = 10.0
DEFAULT_SSH_CONFIG = "~/.ssh/config"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
_MAX_JUMPS = 8  # OpenSSH has no limit, but a loop in ssh_config must not recurse forever


@dataclass(frozen=True)
class Hop:
    """One SSH server on the way: address, port, login user, keys to offer."""

    alias: str  # what the user wrote (the ssh_config Host it matched)
    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()
    allow_agent: bool = True
    look_for_keys: bool = True

    @property
    def known_hosts_name(self) -> str:
        """The name known_hosts files use: ``host``, or ``[host]:port`` off port 22 (as OpenSSH)."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


@dataclass(frozen=True)
class SshTarget:
    host: str  # inventory name, for messages
    hop: Hop
    jumps: tuple[Hop, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    known_hosts: str = DEFAULT_KNOWN_HOSTS  # read, and written by --accept-new-host-keys
    global_known_hosts: tuple[str, ...] = (GLOBAL_KNOWN_HOSTS,)
    accept_new: bool = False  # for the host itself: the flag, or its own ssh settings say accept-new
    accept_new_jumps: bool = False  # for jump hosts: only the flag (--accept-new-host-keys)
    become: bool = False
    become_user: str = "root"
    docker_socket: str = DEFAULT_DOCKER_SOCKET

    @property
    def sudo(self) -> bool:
        """Whether root-only work goes through ``sudo -n`` (become, and not already that user)."""
        return self.become and self.hop.user != self.become_user


def _bool(value: Any, host: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "yes", "true", "on", "y"):
        return True
    if text in ("0", "no", "false", "off", "n", ""):
        return False
    raise InputError(f"host '{host}': {name}: expected true or false, got {value!r}")


def _int(value: Any, host: str, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InputError(f"host '{host}': {name}: expected an integer, got {value!r}") from None
    if not low <= number <= high:
        raise InputError(f"host '{host}': {name}: {number} is out of range {low}..{high}")
    return number


def _seconds(value: Any, host: str, name: str) -> float:
    try:
        number = float(str(value).strip().removesuffix("s"))
    except ValueError:
        raise InputError(f"host '{host}': {name}: expected seconds, got {value!r}") from None
    if not 0 < number <= 3600:
        raise InputError(f"host '{host}': {name}: {value!r} is out of range (0, 3600] seconds")
    return number


_MATCH_EXEC = re.compile(r"^\s*match\s.*\bexec\b", re.IGNORECASE | re.MULTILINE)


def import_paramiko() -> ModuleType:
    """paramiko, imported without the ``invoke`` library when nothing has loaded it yet.

    paramiko imports invoke (and invoke imports unittest.mock) only to run ``Match exec`` lines of
    ssh_config: 70 ms of a one-host run that takes well under a second. :func:`load_ssh_config`
    brings invoke in when a config does use ``Match exec``.
    """
    if "paramiko" in sys.modules:
        return sys.modules["paramiko"]
    block = "invoke" not in sys.modules
    if block:
        sys.modules["invoke"] = None  # type: ignore[assignment]  # makes `import invoke` fail fast
    try:
        import paramiko
    finally:
        if block and sys.modules.get("invoke", ...) is None:
            del sys.modules["invoke"]
    return paramiko


def load_ssh_config(path: str | None, must_exist: bool = True) -> paramiko.SSHConfig:
    """The parsed ssh_config at *path* (default ``~/.ssh/config``); empty when that default is absent."""
    pm = import_paramiko()
    explicit = path is not None
    resolved = Path(os.path.expanduser(path or DEFAULT_SSH_CONFIG))
    if not resolved.exists():
        if explicit and must_exist:
            raise InputError(f"ssh config file {resolved} does not exist")
        return cast("paramiko.SSHConfig", pm.SSHConfig())
    try:
        if pm.config.invoke is None and _MATCH_EXEC.search(resolved.read_text(errors="replace")):
            import invoke

            pm.config.invoke = invoke
        return cast("paramiko.SSHConfig", pm.SSHConfig.from_path(str(resolved)))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ssh config {resolved}: {exc}") from None
    except Exception as exc:  # paramiko raises ConfigParseError and friends for bad syntax
        raise InputError(f"ssh config {resolved}: {exc}") from None


def _entry(config: paramiko.SSHConfig, alias: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """ssh_config's options for *alias*, with *overrides* (the inventory's ssh args) winning;
    identity files from both, the overrides' first."""
    entry: dict[str, Any] = dict(config.lookup(alias))
    for key, value in overrides.items():
        entry[key] = [*value, *entry.get(key, [])] if key == "identityfile" else value
    return entry


def _hop(
    alias: str,
    config: paramiko.SSHConfig,
    host: str,
    port: int | None = None,
    user: str | None = None,
    key_files: tuple[str, ...] = (),
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Hop, str | None]:
    """A hop for *alias* with explicit port/user/keys winning over ssh_config; and its ProxyJump."""
    entry = _entry(config, alias, overrides or {})
    config_keys = tuple(os.path.expanduser(k) for k in entry.get("identityfile", []))
    keys = tuple(dict.fromkeys([*key_files, *config_keys]))  # keep order, drop duplicates
    identities_only = str(entry.get("identitiesonly", "no")).lower() == "yes"
    hop = Hop(
        alias=alias,
        hostname=str(entry.get("hostname", alias)),
        port=port if port is not None else _int(entry.get("port", 22), host, f"Port for {alias}", 1, 65535),
        user=user or str(entry.get("user") or getpass.getuser()),
        key_files=keys,
        # IdentitiesOnly: offer only the named files, as OpenSSH does (and avoid MaxAuthTries
        # failures when an agent holds many keys).
        allow_agent=not (identities_only and keys),
        # The default ~/.ssh/id_* files are tried only when no key is named: each extra key offered
        # is a round trip, and a server counts them against MaxAuthTries.
        look_for_keys=not keys,
    )
    jump = entry.get("proxyjump")
    if jump is not None and str(jump).lower() == "none":
        jump = None
    return hop, (str(jump) if jump else None)


_JUMP_RE = re.compile(r"^(?:ssh://)?(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]]+\]|[^:@]+)(?::(?P<port>\d+))?$")


def parse_jump(spec: str) -> list[tuple[str, str | None, int | None]]:
    """``[user@]host[:port]`` hops, comma separated, as ProxyJump takes them: [(host, user, port)]."""
    out: list[tuple[str, str | None, int | None]] = []
    for part in spec.split(","):
        match = _JUMP_RE.match(part.strip())
        if not match:
            raise InputError(
                f"ProxyJump {spec!r}: cannot read {part.strip()!r} (expected [user@]host[:port])"
            )
        port = int(match.group("port")) if match.group("port") else None
        out.append((match.group("host").strip("[]"), match.group("user"), port))
    return out


def _jumps(first: str | None, config: paramiko.SSHConfig, host: str) -> tuple[Hop, ...]:
    """Resolve a ProxyJump chain; each jump host is itself looked up in ssh_config (and may jump)."""
    chain: list[Hop] = []
    pending = first
    while pending:
        hops = parse_jump(pending)
        pending = None
        resolved: list[Hop] = []
        for i, (alias, user, port) in enumerate(hops):
            hop, own_jump = _hop(alias, config, host, port, user)
            resolved.append(hop)
            if i == 0:
                pending = own_jump  # only the first hop's own ProxyJump applies (OpenSSH)
        chain[:0] = resolved
        if len(chain) > _MAX_JUMPS:
            raise InputError(f"host '{host}': ProxyJump chain longer than {_MAX_JUMPS} hops (a loop?)")
    return tuple(chain)


def resolve_target(
    host: str,
    host_vars: Mapping[str, Any],
    config: paramiko.SSHConfig | None = None,
    check_files: bool = True,
) -> SshTarget:
    """Everything needed to connect to *host*. Raises InputError for values that cannot work.

    ``check_files=False`` (the checks before a run) leaves out what only matters when connecting, the
    key and ssh_config files: a command that never connects must not need them on this machine.
    """
    from regdeploy.transport.sshargs import ssh_args_options

    options, args_config = ssh_args_options(host, host_vars)
    if config is None:
        config_path = host_vars.get("regdeploy_ssh_config") or args_config
        config = load_ssh_config(str(config_path) if config_path else None, must_exist=check_files)
    alias = str(host_vars.get("ansible_host") or host_vars.get("ansible_ssh_host") or host)
    port_var = host_vars.get("ansible_port", host_vars.get("ansible_ssh_port"))
    port = None if port_var is None else _int(port_var, host, "ansible_port", 1, 65535)
    user_var = host_vars.get("ansible_user", host_vars.get("ansible_ssh_user"))
    key_var = host_vars.get("ansible_ssh_private_key_file", host_vars.get("ansible_private_key_file"))
    keys = (os.path.expanduser(str(key_var)),) if key_var else ()
    for key in keys:
        if check_files and not os.path.isfile(key):
            raise TransportError(f"{host}: ansible_ssh_private_key_file {key} does not exist on this machine")
    hop, jump = _hop(alias, config, host, port, str(user_var) if user_var else None, keys, options)

    timeout_var = host_vars.get("ansible_ssh_timeout", host_vars.get("ansible_timeout"))
    if timeout_var is None:
        timeout_var = host_vars.get(VAR_CLI_TIMEOUT)
    entry = _entry(config, alias, options)
    if timeout_var is None and entry.get("connecttimeout"):
        timeout_var = entry["connecttimeout"]
    timeout = DEFAULT_TIMEOUT if timeout_var is None else _seconds(timeout_var, host, "ansible_ssh_timeout")

    known = host_vars.get("regdeploy_known_hosts") or host_vars.get("ansible_ssh_known_hosts_file")
    if not known and entry.get("userknownhostsfile"):
        known = str(entry["userknownhostsfile"]).split()[0]  # OpenSSH allows several; the first is written
    where = "its ssh args set" if "stricthostkeychecking" in options else "ssh_config sets"
    strict = str(entry.get("stricthostkeychecking", "")).lower()
    if strict in ("no", "off", "false"):
        # Turning host key checks off would let anyone on the path read the registry's secrets.
        raise InputError(
            f"host '{host}': {where} StrictHostKeyChecking {strict} for {alias}; regdeploy always "
            "checks host keys: use accept-new (or --accept-new-host-keys) to add unknown keys"
        )
    if known and os.path.realpath(os.path.expanduser(str(known))) == os.devnull:
        raise InputError(
            f"host '{host}': known_hosts file {known}: regdeploy checks host keys against a real file; "
            "set regdeploy_known_hosts to one (and --accept-new-host-keys on first contact)"
        )
    flag = _bool(host_vars.get(VAR_ACCEPT_NEW, False), host, VAR_ACCEPT_NEW)
    accept_new = flag or strict == "accept-new"

    become = _bool(host_vars.get("ansible_become", False), host, "ansible_become")
    method = str(host_vars.get("ansible_become_method", "sudo"))
    if become and method != "sudo":
        raise InputError(f"host '{host}': ansible_become_method {method!r} is not supported (only sudo)")
    docker_host = str(host_vars.get("regdeploy_docker_host") or "")
    socket_path = DEFAULT_DOCKER_SOCKET
    if docker_host:
        if not docker_host.startswith("unix://"):
            raise InputError(
                f"host '{host}': regdeploy_docker_host {docker_host!r}: over SSH only a unix:// socket "
                "on the remote host is supported"
            )
        socket_path = docker_host.removeprefix("unix://")
    return SshTarget(
        host=host,
        hop=hop,
        jumps=_jumps(jump, config, host),
        timeout=timeout,
        known_hosts=os.path.expanduser(str(known or DEFAULT_KNOWN_HOSTS)),
        accept_new=accept_new,
        accept_new_jumps=flag,
        become=become,
        become_user=str(host_vars.get("ansible_become_user") or "root"),
        docker_socket=socket_path,
    )
