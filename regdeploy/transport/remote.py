"""The few shell commands the SSH transport runs, as pure builders and pure parsers of their output.

Each command is POSIX sh plus coreutils (present on any host that runs Docker), takes paths as
positional arguments (never spliced into the script), and answers in one round trip. Nothing secret
is ever part of a command: file contents travel over SFTP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from regdeploy.transport.base import FileState

# One `stat` and one `sha256sum` for all paths: a process per file costs the host more than the
# answer. Lines: "S <hex st_mode> <uid> <gid> <path>" for what exists, "D <path>" where this user
# may not look, "<sha256>  <path>" for readable regular files; a path on no line does not exist.
STAT_SCRIPT = r"""
stat -L --printf 'S %f %u %g %n\n' -- "$@" 2>/dev/null
n=$#
for p do
  if [ -f "$p" ]; then
    if [ -r "$p" ]; then set -- "$@" "$p"; else printf 'D %s\n' "$p"; fi
  elif [ ! -e "$p" ] && [ -d "${p%/*}/" ] && [ ! -x "${p%/*}/" ]; then
    printf 'D %s\n' "$p"
  fi
done
shift "$n"
[ "$#" -eq 0 ] || sha256sum -- "$@" 2>/dev/null
true
"""

# Walks up from the path to the first existing ancestor and says why the path could not be created.
CREATABLE_SCRIPT = r"""
p=$1
while [ ! -e "$p" ]; do
  if [ -L "$p" ]; then printf 'dangling %s\n' "$p"; exit 0; fi
  p=$(dirname -- "$p")
done
if [ ! -d "$p" ]; then printf 'notdir %s\n' "$p"; exit 0; fi
if [ -w "$p" ] && [ -x "$p" ]; then printf 'ok %s\n' "$p"; exit 0; fi
if findmnt -n -o OPTIONS -T "$p" 2>/dev/null | grep -qE '(^|,)ro(,|$)'; then
  printf 'readonly %s\n' "$p"; exit 0
fi
printf 'notwritable %s\n' "$p"
"""

# Bytes available (to this user) on the filesystem holding the path or its nearest existing ancestor.
FREE_SCRIPT = r"""
p=$1
while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done
df -P -B1 -- "$p" | tail -n 1
"""

DOCKER_SOCKET_SCRIPT = r"""
s=$1
if [ ! -e "$s" ]; then echo absent
elif [ ! -S "$s" ]; then echo notsocket
elif [ -r "$s" ] && [ -w "$s" ]; then echo access
else echo denied
fi
"""


def sh(script: str, *args: str) -> list[str]:
    """argv for ``sh -c SCRIPT sh ARGS…``: paths stay arguments, never part of the script. The C
    locale keeps the messages the scripts match on in English."""
    return ["sh", "-c", "LC_ALL=C; export LC_ALL\n" + script, "sh", *args]


def _unescape_sum_name(line: str) -> str:
    """sha256sum escapes a name holding a backslash or newline and marks its line with a leading \\."""
    if not line.startswith("\\"):
        return line[66:]
    return line[67:].replace("\\n", "\n").replace("\\\\", "\\")


def parse_stat(paths: Sequence[str], output: str) -> dict[str, FileState | str | None]:
    """FileState per path, None for absent, or the string "denied" when this user may not look."""
    modes: dict[str, int] = {}
    owners: dict[str, tuple[int, int]] = {}
    digests: dict[str, str] = {}
    denied: set[str] = set()
    for line in output.splitlines():
        if line.startswith("S "):
            raw_mode, uid, gid, name = line[2:].split(" ", 3)
            modes[name] = int(raw_mode, 16)
            owners[name] = (int(uid), int(gid))
        elif line.startswith("D "):
            denied.add(line[2:])
        elif (len(line) > 66 and line[64:66] == "  ") or line.startswith("\\"):
            digest = line.lstrip("\\")[:64]
            if not all(c in "0123456789abcdef" for c in digest):
                raise ValueError(f"unexpected line {line[:100]!r}")
            digests[_unescape_sum_name(line)] = digest
        elif line:
            raise ValueError(f"unexpected line {line[:100]!r}")
    out: dict[str, FileState | str | None] = {}
    for path in paths:
        if path in denied:
            out[path] = "denied"
        elif path not in modes:
            out[path] = None
        else:
            st_mode = modes[path]
            kind = {0o040000: "dir", 0o100000: "file"}.get(st_mode & 0o170000, "other")
            if kind == "file" and path not in digests:
                raise ValueError(f"no checksum for {path}")
            else:
                checksum = digests.get(path) if kind == "file" else None
                out[path] = FileState(kind, st_mode & 0o7777, checksum, *owners[path])
    return out


def parse_creatable(output: str) -> str | None:
    """creatable_problem()'s answer from CREATABLE_SCRIPT's output (the same words as the local one)."""
    word, _, path = output.strip().partition(" ")
    return {
        "ok": None,
        "dangling": f"{path} is a dangling symlink",
        "notdir": f"{path} exists and is not a directory",
        "readonly": f"{path} is on a read-only filesystem",
        "notwritable": f"{path} is not writable by this user",
    }.get(word, f"cannot check {path or 'the path'}: {output.strip()[:100]!r}")


def parse_df(output: str) -> int:
    """Available bytes from the last line of ``df -P -B1``."""
    fields = output.strip().splitlines()[-1].split()
    return int(fields[3])


def _hex_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` (little-endian 32-bit words, as /proc/net/tcp prints them) -> (ip, port)."""
    addr, _, port = text.partition(":")
    raw = bytes.fromhex(addr)
    # Each 4-byte group is a host-order (little-endian on x86/arm) 32-bit word.
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(swapped)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


def listening(proc_net_tcp: str) -> set[tuple[str, int]]:
    """(ip, port) of every TCP socket in LISTEN state in /proc/net/tcp and /proc/net/tcp6 text."""
    out: set[tuple[str, int]] = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] == "sl" or fields[3] != "0A":  # 0A = TCP_LISTEN
            continue
        try:
            out.add(_hex_address(fields[1]))
        except ValueError:
            continue
    return out


_WILDCARDS = ("0.0.0.0", "::")


def port_conflicts(listeners: set[tuple[str, int]], bind: str, port: int) -> bool:
    """Whether binding (bind, port) would fail with EADDRINUSE given these listeners (Linux rules:
    a wildcard listener blocks every address, and a wildcard bind is blocked by any listener)."""
    for ip, p in listeners:
        if p != port:
            continue
        if ip == bind or ip in _WILDCARDS or bind in _WILDCARDS:
            return True
    return False
