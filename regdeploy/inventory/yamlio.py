"""Reading YAML and JSON files into plain data, with one-line errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from regdeploy.errors import InventoryError
from regdeploy.inventory.unevaluated import Unsafe, Vaulted

_VAULT_HEADER = "$ANSIBLE_VAULT;"


class _Loader(yaml.SafeLoader):
    """SafeLoader that understands the tags Ansible users put in inventories; ``display`` names the
    file in what it records."""

    display = "inventory"


def _construct_unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    # Ansible's !unsafe only stops Jinja templating of the value: the plain value, its strings
    # marked so that braces in them are not mistaken for a template.
    if isinstance(node, yaml.MappingNode):
        return {k: _unsafe(v) for k, v in loader.construct_mapping(node, deep=True).items()}
    if isinstance(node, yaml.SequenceNode):
        return [_unsafe(v) for v in loader.construct_sequence(node, deep=True)]
    assert isinstance(node, yaml.ScalarNode)
    return Unsafe(loader.construct_scalar(node))


def _unsafe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsafe(v) for v in value]
    return Unsafe(value) if isinstance(value, str) else value


def _construct_vault(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    # Kept as a placeholder: fine where regdeploy does not look, refused where it does.
    return Vaulted(getattr(loader, "display", "inventory"), node.start_mark.line + 1)


_Loader.add_constructor("!unsafe", _construct_unsafe)
_Loader.add_constructor("!vault", _construct_vault)


def one_line(text: str) -> str:
    return " ".join(text.split())


def read_text(path: Path, display: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InventoryError(f"{display}: not a UTF-8 text file") from None
    except OSError as exc:
        raise InventoryError(f"{display}: cannot read: {exc.strerror or exc}") from None
    return text


def is_vault_file(text: str) -> bool:
    """A whole file encrypted with ansible-vault."""
    return text.startswith(_VAULT_HEADER)


def parse_yaml(text: str, display: str) -> Any:
    try:
        loader = _Loader(text)  # a SafeLoader subclass
        loader.display = display
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if problem.startswith("but ") and exc.context:  # "but found another document" needs its context
            problem = f"{exc.context}, {problem}"
        where = f"{display}:{mark.line + 1}" if mark is not None else display
        raise InventoryError(one_line(f"{where}: {problem}")) from None
    except yaml.YAMLError as exc:  # e.g. ReaderError (control characters): no mark to report
        raise InventoryError(one_line(f"{display}: {exc}")) from None


def parse_json(text: str, display: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"{display}:{exc.lineno}: {exc.msg}") from None


def parse_data(text: str, path: Path, display: str) -> Any:
    """*path*'s content *text*: JSON for ``.json`` (exact line numbers), YAML otherwise."""
    if path.suffix.lower() == ".json":
        return parse_json(text, display)
    return parse_yaml(text, display)
