"""How endpoints reach config.yml: an actions-only ignore list must survive registry 2.8's bug."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from regdeploy.ops.run import prepare


def rendered_endpoints(tmp: Path, endpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    registry = {
        "config_dir": str(tmp / "c"),
        "data_dir": str(tmp / "d"),
        "auth": {"users": [{"name": "alice"}]},
        "notifications": {"endpoints": endpoints},
    }
    inventory = tmp / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"hosts": {"h": {"ansible_connection": "local", "registry": registry}}}})
    )
    (job,) = prepare(inventory, None).jobs
    config = yaml.safe_load(next(f.data for f in job.rendered.files if f.path.endswith("/config.yml")))
    return list(config["notifications"]["endpoints"])


@pytest.mark.parametrize(
    ("settings", "ignore", "ignoredmediatypes"),
    [
        # 2.8's filter is installed only when a media type is ignored: a placeholder keeps actions working.
        (
            {"ignore": {"actions": ["pull"]}},
            {"mediatypes": ["application/vnd.regdeploy.none"], "actions": ["pull"]},
            None,
        ),
        (
            {"ignore": {"actions": ["pull"], "mediatypes": ["application/octet-stream"]}},
            {"mediatypes": ["application/octet-stream"], "actions": ["pull"]},
            None,
        ),
        (
            {"ignoredmediatypes": ["x/y"], "ignore": {"actions": ["pull"]}},
            {"mediatypes": [], "actions": ["pull"]},
            ["x/y"],
        ),
        ({}, None, None),
    ],
)
def test_ignore_lists(tmp_path: Path, settings: dict[str, Any], ignore: Any, ignoredmediatypes: Any) -> None:
    (endpoint,) = rendered_endpoints(tmp_path, [{"name": "e", "url": "http://172.17.0.1:1/", **settings}])
    assert endpoint.get("ignore") == ignore
    assert endpoint.get("ignoredmediatypes") == ignoredmediatypes
