"""Ansible host patterns in inventories: ranges (``web[01:03]``, ``db-[a:c]``) and ``name:port``."""

from __future__ import annotations

import re
import string

_RANGE = re.compile(r"\[([^\]]*)\]")
_PORT = re.compile(r"^(?P<host>.+):(?P<port>[0-9]+)$")


def expand_range(pattern: str) -> list[str]:
    """Every host name a pattern stands for, in order; ValueError names what is wrong with the range."""
    match = _RANGE.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    bounds = match.group(1).split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range [{match.group(1)}] must be [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError(f"host range [{match.group(1)}] has no end")
    if not step_text.isdigit() or int(step_text) < 1:
        raise ValueError(f"host range [{match.group(1)}] step must be a positive integer")
    step = int(step_text)
    items = _alpha_items(begin, end, step) if begin.isalpha() else _numeric_items(begin, end, step)
    if not items:
        raise ValueError(f"host range [{match.group(1)}] is empty (begin must be <= end)")
    # Expand further ranges in the tail recursively, as Ansible does for db[1:3]-[a:b].
    return [name for item in items for name in expand_range(head + item + tail)]


def _alpha_items(begin: str, end: str, step: int) -> list[str]:
    letters = string.ascii_letters
    if len(begin) != 1 or len(end) != 1 or not end.isalpha():
        raise ValueError(f"host range [{begin}:{end}] must use single letters or integers")
    return list(letters[letters.index(begin) : letters.index(end) + 1 : step])


def _numeric_items(begin: str, end: str, step: int) -> list[str]:
    if not (begin.isdigit() and end.isdigit()):
        raise ValueError(f"host range [{begin}:{end}] must use single letters or integers")
    # A leading zero fixes the width, so web[01:10] gives web01..web10, not web1..web10.
    if len(begin) > 1 and begin.startswith("0"):
        if len(begin) != len(end):
            raise ValueError(f"host range [{begin}:{end}] must give begin and end the same width")
        width = len(begin)
    else:
        width = 0
    return [str(i).zfill(width) for i in range(int(begin), int(end) + 1, step)]


def split_port(pattern: str) -> tuple[str, int | None]:
    """``host:2222`` -> (``host``, 2222); an IPv6 address or a bare range keeps its colons."""
    match = _PORT.match(pattern)
    if match is None:
        return pattern, None
    host = match.group("host")
    if ":" in _RANGE.sub("", host):  # IPv6 like fe80::1 is not host:port
        return pattern, None
    return host, int(match.group("port"))


def expand_host_pattern(pattern: str) -> tuple[list[str], int | None]:
    """The host names and the port (if any) of an inventory host entry."""
    host, port = split_port(pattern.strip())
    return expand_range(host), port
