"""Stop and remove a host's registry container; keep its data unless asked to purge it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from regdeploy.deploy.definition import OLD_SUFFIX
from regdeploy.deploy.facts import inspect_container
from regdeploy.errors import HostError, RegdeployError
from regdeploy.spec.registry import RegistrySpec
from regdeploy.transport import open_transport


def down_host(
    name: str, host_vars: Mapping[str, Any], spec: RegistrySpec, purge_data: bool
) -> list[dict[str, str]]:
    """The changes made, as ``{"resource", "action", "reason"}``; empty when there was nothing to do."""
    transport = open_transport(name, host_vars)
    changes: list[dict[str, str]] = []
    try:
        engine = transport.engine()
        for cname in (spec.name, spec.name + OLD_SUFFIX):
            facts = inspect_container(engine, cname)
            if facts is None:
                continue
            if not facts.managed:
                raise HostError(f"{name}: container {cname!r} was not created by regdeploy; not removing it")
            # Never v=True: anonymous volumes of an adopted container may hold someone's data.
            transport.docker().api.remove_container(facts.id, force=True)
            changes.append({"resource": f"container:{cname}", "action": "remove", "reason": "down"})
        if purge_data:
            for path in (spec.data_dir, spec.config_dir):
                if transport.stat_many([path])[path] is not None:
                    transport.remove_tree(path)
                    changes.append({"resource": f"dir:{path}", "action": "remove", "reason": "--purge-data"})
        return changes
    except RegdeployError:
        raise
    except Exception as exc:
        import docker.errors

        if isinstance(exc, docker.errors.APIError):
            raise HostError(f"{name}: {exc.explanation or exc}") from None
        raise
    finally:
        transport.close()
