"""Running the real Ansible and Molecule command-line tools (installed by the ``test`` extra) the way
a user would, with everything they write kept under the test's own directory.

Ansible and Molecule write to ``~/.ansible`` (and Molecule its scenario state to an "ephemeral
directory" there); ANSIBLE_HOME, ANSIBLE_LOCAL_TEMP, ANSIBLE_REMOTE_TEMP and MOLECULE_EPHEMERAL_DIRECTORY
point them at *tmp* instead, so a test leaves nothing in the user's home.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: ansible-*, molecule and regdeploy
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tool_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the play runs `regdeploy` from PATH
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-home" / "tmp"),
        # Tasks delegated to localhost run "remotely" here: their temp dirs too, not ~/.ansible/tmp.
        ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-home" / "remote-tmp"),
        MOLECULE_EPHEMERAL_DIRECTORY=str(tmp / "molecule-ephemeral"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PY_COLORS="0",
        NO_COLOR="1",
        TERM="dumb",
    )
    env.update(extra or {})
    return env


def run_tool(
    argv: list[str], tmp: Path, cwd: Path = REPO, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (its first item a command of the venv): its output, both streams in the order
    they were written (Molecule logs on stderr, the playbooks it runs print on stdout), no colours."""
    exe = BIN / argv[0]
    if not exe.exists():
        pytest.fail(f"{exe} is missing: install the test extra (`pip install -e '.[test]'`)", pytrace=False)
    result = subprocess.run(
        [str(exe), *argv[1:]],
        cwd=cwd,
        env=tool_env(tmp, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    result.stdout = _ANSI.sub("", result.stdout)
    return result


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout[-8000:]}"
