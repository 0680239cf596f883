"""A bounded FIFO of pending deliveries, one JSON file per item, that survives restarts and crashes.

``put`` returns only once the file is on disk (written to a temp name, fsynced, renamed, directory
fsynced), so an event the relay acknowledged to the registry is not lost by a crash. When the queue
is full ``put`` raises QueueFull and the relay answers 503: the registry then keeps the event in its
own retry queue, so a burst costs latency, not events. Deliveries that can never succeed move to
``failed/`` (bounded too, oldest dropped first) where a person can read them, or move them back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAILED_DIR = "failed"
RECENT_KEYS = 4096  # delivered keys remembered, so a registry retry of an acknowledged event is ignored


class QueueFull(Exception):
    """The queue holds its maximum number of items."""


@dataclass(frozen=True)
class Item:
    key: str
    path: Path
    payload: Mapping[str, Any]


def _safe(key: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9-]", "", key)[:64]
    return clean if clean == key and clean else hashlib.sha256(key.encode()).hexdigest()[:32]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class DiskQueue:
    """Thread-safe: receiver threads ``put``, one worker ``peek``s, then ``done``s or ``fail``s."""

    def __init__(self, directory: Path, max_items: int) -> None:
        self.directory = directory
        self.max_items = max_items
        self._failed = directory / FAILED_DIR
        self._failed.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # payloads name repositories and users: not for everyone
        self._cond = threading.Condition()
        self._seq = 0
        self._recent: deque[str] = deque(maxlen=RECENT_KEYS)
        for leftover in directory.glob(".*.tmp"):  # a crash between write and rename
            leftover.unlink(missing_ok=True)
        self._paths: deque[Path] = deque(sorted(directory.glob("*.json")))
        self._keys = {self._key_of(p) for p in self._paths}

    @staticmethod
    def _key_of(path: Path) -> str:
        return path.stem.partition("-")[2]

    def __len__(self) -> int:
        with self._cond:
            return len(self._paths)

    def failed(self) -> list[Path]:
        return sorted(self._failed.glob("*.json"))

    def put(self, key: str, payload: Mapping[str, Any]) -> bool:
        """Store ``payload`` durably; False if ``key`` is already queued or was delivered lately."""
        safe = _safe(key)
        with self._cond:
            if safe in self._keys or safe in self._recent:
                return False
            if len(self._paths) >= self.max_items:
                raise QueueFull(f"{self.directory}: {self.max_items} deliveries pending")
            # Names sort in arrival order: nanoseconds, forced strictly increasing within a process.
            self._seq = max(self._seq + 1, time.time_ns())
            path = self.directory / f"{self._seq:020d}-{safe}.json"
            _write_durably(path, json.dumps({"key": key, "payload": dict(payload)}).encode())
            self._paths.append(path)
            self._keys.add(safe)
            self._cond.notify_all()
            return True

    def peek(self, timeout: float) -> Item | None:
        """The oldest item, waiting up to ``timeout`` for one; an unreadable file moves to failed/."""
        with self._cond:
            while True:
                if not self._paths and not self._cond.wait(timeout):
                    return None
                if not self._paths:  # woken by wake()
                    return None
                path = self._paths[0]
                try:
                    doc = json.loads(path.read_bytes())
                    return Item(str(doc["key"]), path, doc["payload"])
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    self._move_to_failed(path, f"unreadable queue file: {exc}")

    def wake(self) -> None:
        """Wake a worker waiting in peek (on shutdown)."""
        with self._cond:
            self._cond.notify_all()

    def done(self, item: Item) -> None:
        with self._cond:
            item.path.unlink(missing_ok=True)
            _fsync_dir(self.directory)
            self._forget(item.path)
            self._recent.append(_safe(item.key))

    def fail(self, item: Item, reason: str) -> Path:
        """Move ``item`` to failed/ with ``reason``; it will not be retried."""
        with self._cond:
            return self._move_to_failed(item.path, reason)

    def _forget(self, path: Path) -> None:
        with contextlib.suppress(ValueError):
            self._paths.remove(path)
        self._keys.discard(self._key_of(path))

    def _move_to_failed(self, path: Path, reason: str) -> Path:
        dest = self._failed / path.name
        try:
            doc = json.loads(path.read_bytes())
            doc["failed"] = reason
            _write_durably(dest, json.dumps(doc).encode())
            path.unlink(missing_ok=True)
        except (OSError, ValueError, TypeError):  # keep the bytes as they are for a person to read
            with contextlib.suppress(OSError):
                os.replace(path, dest)
        _fsync_dir(self.directory)
        self._forget(path)
        for old in sorted(self._failed.glob("*.json"))[: -self.max_items]:
            old.unlink(missing_ok=True)
        return dest
