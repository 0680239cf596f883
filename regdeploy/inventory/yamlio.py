"""Reading YAML and JSON files into plain data, with one-line errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from regdeploy.errors import InventoryError

_VAULT_HEADER = "$ANSIBLE_VAULT;"


class _Loader(yaml.SafeLoader):
    """SafeLoader that understands the tags Ansible users put in inventories."""


def _construct_unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    # Ansible's !unsafe only stops Jinja templating of the value; we never template inventory
    # values, so it is the plain value.
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


def _construct_vault(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, "Ansible Vault values (!vault) are not supported: use a secret reference", node.start_mark
    )


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
    if text.startswith(_VAULT_HEADER):
        raise InventoryError(f"{display}: Ansible Vault encrypted files are not supported")
    return text


def parse_yaml(text: str, display: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader subclass
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


def load_data(path: Path, display: str) -> Any:
    """The file's content: JSON for ``.json`` (exact line numbers), YAML otherwise."""
    text = read_text(path, display)
    if path.suffix.lower() == ".json":
        return parse_json(text, display)
    return parse_yaml(text, display)
