"""The files of ``registry.gc``'s schedule: the cron entry, the script it runs, and config.yml's
read-only variant the script switches to. Pure."""

from __future__ import annotations

import dataclasses
import shlex

from regdeploy.deploy.files import Rendered, RenderedDir, RenderedFile
from regdeploy.deploy.layout import CONTAINER_CONFIG_DIR
from regdeploy.deploy.templates import config_yml, render_template
from regdeploy.materials.host import HostMaterials
from regdeploy.spec.gc import CRON_DIR
from regdeploy.spec.registry import RegistrySpec


def gc_dir(spec: RegistrySpec) -> str:
    return f"{spec.config_dir}/gc"


def cron_file(spec: RegistrySpec) -> str:
    return f"{spec.gc.cron_dir if spec.gc else CRON_DIR}/regdeploy-gc-{spec.name}"


def gc_absent(spec: RegistrySpec) -> tuple[str, ...]:
    """Without a schedule: what one left behind, to remove (a cron_dir of its own is not known)."""
    cfg = gc_dir(spec)
    return (cron_file(spec), f"{cfg}/regdeploy-gc", f"{cfg}/config-readonly.yml")


def _run_args(spec: RegistrySpec, rendered: Rendered) -> str:
    """``docker run`` options of the one-off garbage-collect container: the registry unit's mounts
    and confinement, no network (it works on the data dir)."""
    from regdeploy.deploy.units import registry_unit

    unit = registry_unit(spec, rendered)
    run = unit.run
    args = ["--network", "none", "--user", run.effective_user, "--security-opt", "no-new-privileges:true",
            "--cap-drop", "ALL", "--memory", str(run.memory), "--memory-swap", str(run.memory),
            "--pids-limit", str(run.pids)]  # fmt: skip
    if run.read_only:
        args.append("--read-only")
    for cap in run.cap_add:
        args += ["--cap-add", cap]
    for m in unit.mounts:
        args += ["-v", f"{m.source}:{m.target}" + (":ro" if m.read_only else "")]
    return " ".join(shlex.quote(a) for a in args)


def gc_files(
    spec: RegistrySpec, materials: HostMaterials, dirs: list[RenderedDir], files: list[RenderedFile]
) -> None:
    gc = spec.gc
    assert gc is not None
    me = spec.run.owner
    cfg = gc_dir(spec)
    readonly = config_yml(dataclasses.replace(spec, readonly=True), materials, materials.endpoints)
    so_far = Rendered(tuple(dirs), tuple(files))
    flags = "--delete-untagged" if gc.untagged else ""
    context = {
        "spec": spec,
        "config": f"{spec.config_dir}/config.yml",
        "readonly": f"{cfg}/config-readonly.yml",
        "saved": f"{cfg}/config-writable.yml",
        "run": _run_args(spec, so_far),
        "flags": flags,
        "container_config": f"{CONTAINER_CONFIG_DIR}/config.yml",
    }
    script = render_template(spec, "regdeploy-gc.sh.j2", context)
    log = f"/var/log/regdeploy-gc-{spec.name}.log"
    entry = (
        f"# Rendered by regdeploy for host {spec.host}: garbage-collect registry {spec.name} (registry.gc).\n"
        f"{gc.schedule} root /bin/sh {shlex.quote(cfg + '/regdeploy-gc')} >>{shlex.quote(log)} 2>&1\n"
    ).encode()
    dirs += [RenderedDir(cfg, 0o700), RenderedDir(gc.cron_dir, 0o755)]
    files += [
        RenderedFile(f"{cfg}/config-readonly.yml", readonly, 0o600, restart=False, secret=True, owner=me),
        RenderedFile(f"{cfg}/regdeploy-gc", script, 0o700, restart=False, secret=False),
        RenderedFile(cron_file(spec), entry, 0o644, restart=False, secret=False),
    ]
