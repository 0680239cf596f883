"""Carry out a host's plan: images, the network, directories, files (atomically), then each unit's
container in dependency order, then what is no longer wanted.

Order matters for "no partial change": the only step that can fail for outside reasons before
anything is written (getting the images) goes first. A replaced container is kept aside until
every unit of the host serves; when one does not, the new containers go, the previous files are
put back, and the previous containers return, in dependency order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from regdeploy.deploy.definition import LABEL_MANAGED, LABEL_REGISTRY, OLD_SUFFIX, create_body, labels
from regdeploy.deploy.files import Rendered
from regdeploy.deploy.health import wait_ready
from regdeploy.deploy.plan import Change, Plan, Wanted
from regdeploy.deploy.units import Unit
from regdeploy.errors import ApplyError, RegdeployError
from regdeploy.spec.registry import RegistrySpec
from regdeploy.transport.base import Transport
from regdeploy.transport.engine_api import Engine

Progress = Callable[[str], None]
ObtainImage = Callable[[str], str]  # image ref -> its id on the host, getting it there first
PreviousFiles = dict[str, tuple[bytes | None, int, tuple[int, int] | None]]  # path -> (data, mode, owner)


@dataclass
class _Undo:
    """What to put back if a unit fails: old file contents (None = did not exist), and the units
    replaced so far, as (unit, old container id aside or None, whether it was running)."""

    files: PreviousFiles = field(default_factory=dict)
    created: list[str] = field(default_factory=list)  # new container ids, in order
    aside: list[tuple[Unit, str, bool]] = field(default_factory=list)


def apply_plan(
    transport: Transport,
    spec: RegistrySpec,
    rendered: Rendered,
    plan: Plan,
    wanted: Wanted,
    ca_pem: bytes | None,
    progress: Progress,
    mask: Callable[[str], str],
    obtain_image: ObtainImage,
) -> PreviousFiles:
    """Carry out *plan*; returns the previous content of every file it wrote (None: it did not
    exist), which is what a later rollback writes back."""
    if not plan.changed:
        return {}
    engine = transport.engine()
    for change in plan.of_kind("image"):
        image_id = obtain_image(change.target)
        for definition in wanted.definitions.values():
            if definition["image"] == change.target:
                definition["image_id"] = image_id
    for change in plan.of_kind("network"):
        progress(f"creating network {change.target}")
        engine.create_network(change.target, {LABEL_MANAGED: "true", LABEL_REGISTRY: spec.name})
    dirs = {d.path: d for d in rendered.dirs}
    for change in plan.of_kind("dir"):
        d = dirs[change.target]
        if change.action == "create":
            transport.makedirs(d.path, d.mode)
            if d.owner is not None:
                transport.chown(d.path, *d.owner)
        elif change.action == "chmod":
            transport.chmod(d.path, d.mode)
        elif change.action == "chown" and d.owner is not None:
            recursive = d.path == spec.data_dir  # an older version's root-owned data, kept as it is
            if recursive:
                progress(f"handing {d.path} to uid:gid {d.owner[0]}:{d.owner[1]} (the registry's user)")
            transport.chown(d.path, *d.owner, recursive=recursive)
    undo = _Undo()
    by_path = {f.path: f for f in rendered.files}
    # The files' own modes and owners, so that what is put back (here or by rollback) is as it was.
    written = [c.target for c in plan.of_kind("file") if c.action in ("create", "update")]
    before = transport.stat_many(written) if written else {}
    for change in plan.of_kind("file"):
        if change.action == "remove":
            state = before.get(change.target) or transport.stat_many([change.target])[change.target]
            if state is not None and state.kind == "file":
                data = transport.read_file(change.target)
                undo.files[change.target] = (data, state.mode, (state.uid, state.gid))
            transport.remove_file(change.target)
            continue
        f = by_path[change.target]
        if change.action == "chmod":
            transport.chmod(f.path, f.mode)
            continue
        if change.action == "chown":
            assert f.owner is not None
            transport.chown(f.path, *f.owner)
            continue
        state = before.get(f.path)
        if state is not None and state.kind == "file":
            undo.files[f.path] = (transport.read_file(f.path), state.mode, (state.uid, state.gid))
        else:
            undo.files[f.path] = (None, f.mode, f.owner)
        transport.put_file(f.path, f.data, f.mode, f.owner)
    steps = _Steps(engine, transport, spec, wanted, ca_pem, mask, undo, progress)
    try:
        for change in plan.of_kind("container"):
            steps.run(change)
    except RegdeployError as exc:
        raise ApplyError(f"{spec.host}: {exc}{steps.roll_back()}") from None
    steps.commit()
    return {path: (data, mode, owner) for path, (data, mode, owner) in undo.files.items()}


@dataclass
class _Steps:
    """The container steps of one apply, and how to undo them all."""

    engine: Engine
    transport: Transport
    spec: RegistrySpec
    wanted: Wanted
    ca_pem: bytes | None
    mask: Callable[[str], str]
    undo: _Undo
    progress: Progress

    def run(self, change: Change) -> None:
        unit = self.wanted.unit(change.target)
        if change.action == "remove" or unit is None:
            self.engine.remove_container(change.target, force=True)
            return
        try:
            if change.action == "create":
                self.progress(f"starting container {unit.name}")
                self._create_and_start(unit)
            elif change.action in ("recreate", "adopt"):
                self.progress(f"replacing container {unit.name} ({change.reason})")
                self._replace(unit)
            elif change.action == "start":
                self.progress(f"starting container {unit.name}")
                self.engine.start_container(unit.name)
                self._wait(unit, unit.name)
            elif change.action == "restart":
                self.progress(f"restarting container {unit.name} ({change.reason})")
                self._restart(unit)
        except RegdeployError as exc:
            raise ApplyError(f"container {unit.name}: {change.action} failed: {exc}") from None

    def _wait(self, unit: Unit, container: str) -> None:
        s = self.spec
        acme = s.tls.mode == "letsencrypt"
        ca = self.ca_pem if unit.probe.kind == "http" else None
        wait_ready(self.engine, container, unit.probe, self.transport.address, ca, s.health_timeout,
                   self.mask, acme, unit.name)  # fmt: skip

    def _create(self, unit: Unit) -> str:
        definition = self.wanted.definitions[unit.name]
        body = create_body(unit, definition, labels(self.spec.host, self.spec.name, unit, definition))
        new = self.engine.create_container(unit.name, body)
        self.undo.created.append(new)
        return new

    def _create_and_start(self, unit: Unit) -> None:
        new = self._create(unit)
        self.engine.start_container(new)
        self._wait(unit, new)

    def _replace(self, unit: Unit) -> None:
        """Keep the old container aside until every unit serves; the caller brings it back if not."""
        old = self.engine.inspect_container(unit.name)
        assert old is not None
        old_id = str(old["Id"])
        was_running = old.get("State", {}).get("Status") in ("running", "restarting")
        self.engine.remove_container(unit.name + OLD_SUFFIX, force=True)
        self.engine.rename_container(old_id, unit.name + OLD_SUFFIX)
        try:
            new = self._create(unit)
        except BaseException:
            self.engine.rename_container(old_id, unit.name)
            raise
        self.undo.aside.append((unit, old_id, was_running))
        # Stop only now: the gap is stop + start + first answer, not image or create time.
        self.engine.stop_container(old_id, timeout=10)
        self.engine.start_container(new)
        self._wait(unit, new)

    def _restart(self, unit: Unit) -> None:
        """Restart the same container to read rewritten files; if it does not answer, restart it on
        the previous files."""
        try:
            self.engine.restart_container(unit.name, timeout=10)
            self._wait(unit, unit.name)
        except RegdeployError as exc:
            restored = self._restore_files()
            self.undo.files = {}  # put back once: a later rollback must not write them again
            try:
                self.engine.restart_container(unit.name, timeout=10)
                self._wait(unit, unit.name)
            except RegdeployError as again:  # the first failure stays the headline; say the second too
                raise ApplyError(
                    f"{exc}; restarted on the previous files, it did not serve either: {again}"
                ) from None
            raise ApplyError(f"{exc}{restored}") from None

    def roll_back(self) -> str:
        """Undo every container step so far: new containers go, files return, then the previous
        containers. Returns what to add to the error message."""
        for new in reversed(self.undo.created):
            with contextlib.suppress(RegdeployError):
                self.engine.remove_container(new, force=True)
        restored = self._restore_files()
        problems = []
        for unit, old_id, was_running in self.undo.aside:
            try:
                self.engine.rename_container(old_id, unit.name)
                if was_running:
                    # The caller reports the failure; what served before should serve again.
                    self.engine.start_container(old_id)
                    self._wait(unit, old_id)
            except RegdeployError as exc:
                problems.append(f"; the previous {unit.name} did not come back: {exc}")
        return restored + "".join(problems)

    def commit(self) -> None:
        for _unit, old_id, _ in self.undo.aside:
            self.engine.remove_container(old_id)  # never volumes: an adopted container's data survives

    def _restore_files(self) -> str:
        failed = []
        for path, (data, mode, owner) in self.undo.files.items():
            try:
                if data is None:
                    continue  # new files are harmless without a container that reads them
                self.transport.put_file(path, data, mode, owner)
            except RegdeployError:
                failed.append(path)
        if failed:
            return f"; could not restore {', '.join(failed)}"
        return "; the previous files were put back" if self.undo.files else ""
