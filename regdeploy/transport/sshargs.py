"""``ansible_ssh_common_args`` and ``ansible_ssh_extra_args``, read as OpenSSH reads its command line.

Ansible appends these to every ``ssh`` it runs; inventories use them for jump hosts
(``-o ProxyJump=bastion``, ``-J bastion``), ports, keys and timeouts. regdeploy connects with its own
SSH client, so it reads them into ssh_config options that win over the ssh_config file, as ``-o``
does for ``ssh`` (the inventory's ``ansible_port``/``ansible_user`` still win over both, because
Ansible passes those first and OpenSSH keeps the first value it gets).

An option that changes where or how the connection goes and that regdeploy does not implement is an
error, never silently dropped: the run would otherwise reach the host some other way than Ansible
does. Options that only tune OpenSSH itself (multiplexing, logging, keep-alives) are ignored.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from regdeploy.errors import InputError

ARGS_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")

# ssh_config keywords regdeploy applies (see sshconfig.resolve_target).
APPLIED = frozenset({
    "hostname", "port", "user", "identityfile", "identitiesonly", "proxyjump", "connecttimeout",
    "userknownhostsfile", "stricthostkeychecking",
})  # fmt: skip
# Keywords that tune OpenSSH's own behaviour and mean nothing to regdeploy's client.
IGNORED = frozenset({
    "controlmaster", "controlpersist", "controlpath", "forwardagent", "forwardx11", "forwardx11trusted",
    "loglevel", "serveraliveinterval", "serveralivecountmax", "tcpkeepalive", "compression",
    "addkeystoagent", "hashknownhosts", "checkhostip", "updatehostkeys", "visualhostkey", "batchmode",
    "requesttty", "connectionattempts", "ipqos", "preferredauthentications", "pubkeyauthentication",
    "passwordauthentication", "kbdinteractiveauthentication", "challengeresponseauthentication",
    "gssapiauthentication", "gssapidelegatecredentials", "sendenv", "setenv", "escapechar",
})  # fmt: skip
# Flags without a value that change nothing regdeploy does (quiet, verbose, compression, tty, agent).
# -4/-6 are not among them: they change which address is dialled.
IGNORED_FLAGS = frozenset("qvCTtAaXxNn")
# Flags that are an ssh_config keyword in short; with -o and -F, the flags that take a value.
_FLAG_KEYWORDS = {"-J": "proxyjump", "-p": "port", "-l": "user", "-i": "identityfile"}
_WITH_VALUE = frozenset({"-o", "-F", *_FLAG_KEYWORDS})


def ssh_args_options(host: str, host_vars: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The ssh_config options the args variables set (lower-case keywords; ``identityfile`` a list)
    and the ``-F`` config file, if any. The first value of a keyword wins, as in OpenSSH."""
    options: dict[str, Any] = {}
    config_file: str | None = None
    for var in ARGS_VARS:
        text = host_vars.get(var)
        if not text:
            continue
        try:
            argv = shlex.split(str(text))
        except ValueError as exc:
            raise InputError(f"host '{host}': {var}: cannot split {text!r}: {exc}") from None
        for flag, value in _pairs(argv, host, var):
            if flag == "-F":
                config_file = value  # the last -F counts, as for ssh
                continue
            key, val = _option(value, host, var) if flag == "-o" else (_FLAG_KEYWORDS[flag], value)
            if key in IGNORED:
                continue
            if key not in APPLIED:
                raise InputError(
                    f"host '{host}': {var}: {'-o ' + key if flag == '-o' else flag} is not supported by "
                    "regdeploy's SSH client (supported: -J, -p, -l, -i, -F and -o "
                    + ", ".join(sorted(APPLIED)) + ")"
                )
            if key == "identityfile":
                options.setdefault(key, []).append(val)
            else:
                options.setdefault(key, val)
    return options, config_file


def _pairs(argv: list[str], host: str, var: str) -> list[tuple[str, str]]:
    """(flag, value) for each option taking a value; flags may be combined (``-qJ bastion``)."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or len(arg) < 2:
            raise InputError(f"host '{host}': {var}: {arg!r} is not supported by regdeploy's SSH client")
        for j, char in enumerate(arg[1:], start=1):
            flag = "-" + char
            if char in IGNORED_FLAGS:
                continue
            if flag not in _WITH_VALUE:
                raise InputError(f"host '{host}': {var}: {flag!r} is not supported by regdeploy's SSH client")
            value = arg[j + 1 :]
            if not value:
                if i + 1 >= len(argv):
                    raise InputError(f"host '{host}': {var}: {flag} needs a value")
                i += 1
                value = argv[i]
            out.append((flag, value))
            break
        i += 1
    return out


def _option(text: str, host: str, var: str) -> tuple[str, str]:
    """``Key=Value`` or ``Key Value``, as ``-o`` takes it: split at the first ``=`` or blank."""
    match = re.match(r"\s*([^=\s]+)\s*(?:=|\s)\s*(.*)$", text, re.S)
    key, value = (match.group(1).lower(), match.group(2).strip()) if match else ("", "")
    if not key or not value:
        raise InputError(f"host '{host}': {var}: -o {text!r}: expected Key=Value")
    return key, value
