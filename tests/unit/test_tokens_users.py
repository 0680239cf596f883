"""The user file: bcrypt checks, no tell for unknown names, re-read on change, fail closed when broken."""

from __future__ import annotations

import os

import bcrypt
import pytest

from regdeploy.errors import InputError
from regdeploy.tokens import users as users_module
from regdeploy.tokens.users import UserFile, read_users


def line(name: str, password: str) -> str:
    return f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"


def replace(path, text: str) -> None:
    # The way regdeploy writes it: a new file renamed over the old one.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def logged():
    return []


@pytest.fixture
def user_file(tmp_path, logged):
    path = tmp_path / "users"
    path.write_text(line("alice", "wonder") + "# a comment\n\n" + line("bob", "builder"))
    return UserFile(path, logged.append)


def test_check(user_file):
    assert user_file.check("alice", "wonder")
    assert user_file.check("bob", "builder")
    assert not user_file.check("alice", "builder")
    assert not user_file.check("carol", "wonder")
    assert len(user_file) == 2


def test_unknown_user_still_costs_a_bcrypt_compare(user_file, monkeypatch):
    calls = []
    real = users_module.check_password

    def counting(password, hashed):
        calls.append(hashed[:7])
        return real(password, hashed)

    monkeypatch.setattr(users_module, "check_password", counting)
    assert not user_file.check("nobody", "x")
    assert calls == ["$2b$04$"]  # a dummy hash at the file's own cost


def test_non_bcrypt_lines_never_verify(tmp_path):
    path = tmp_path / "users"
    path.write_text("md5user:$apr1$abc$def\nplain:secret\nnohash\n")
    users = UserFile(path, lambda _: None)
    assert not users.check("plain", "secret")
    assert not users.check("nohash", "")
    assert len(users) == 3


def test_long_password_is_refused_not_truncated(tmp_path):
    path = tmp_path / "users"
    path.write_text(line("alice", "a" * 72))
    assert not UserFile(path, lambda _: None).check("alice", "a" * 72 + "extra")


def test_replaced_file_is_re_read(user_file, logged):
    replace(user_file.path, line("alice", "rotated") + line("carol", "new"))
    assert user_file.check("alice", "rotated")
    assert not user_file.check("alice", "wonder")
    assert not user_file.check("bob", "builder")  # removed
    assert user_file.check("carol", "new")
    assert logged == ["token server: users file re-read (2 users)"]


def test_a_broken_file_refuses_everyone_until_fixed(user_file, logged):
    replace(user_file.path, ":no-name\n")
    assert not user_file.check("alice", "wonder")
    assert "password logins are refused until it is fixed" in logged[-1]
    user_file.path.unlink()
    assert not user_file.check("alice", "wonder")
    replace(user_file.path, line("alice", "back"))
    assert user_file.check("alice", "back")


def test_bad_file_at_start_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"users: user file not found"):
        read_users(tmp_path / "users")
    (tmp_path / "users").write_text("alice:x\n:hash\n")
    with pytest.raises(InputError, match=r"users: entry 2: expected NAME:BCRYPT_HASH"):
        UserFile(tmp_path / "users")


def test_a_verified_password_is_remembered_for_a_while_and_failures_never(user_file, monkeypatch):
    calls = []
    real = users_module.check_password

    def counting(password, hashed):
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(users_module, "check_password", counting)
    now = [1000.0]
    assert user_file.check("alice", "wonder", clock=lambda: now[0])
    assert user_file.check("alice", "wonder", clock=lambda: now[0])
    assert calls == ["wonder"]  # the second request cost no bcrypt compare
    assert not user_file.check("alice", "guess", clock=lambda: now[0])
    assert not user_file.check("alice", "guess", clock=lambda: now[0])
    assert calls == ["wonder", "guess", "guess"]  # a wrong password pays every time
    now[0] += users_module.VERIFIED_TTL + 1
    assert user_file.check("alice", "wonder", clock=lambda: now[0])
    assert calls[-1] == "wonder"  # expired: checked again


def test_a_rotated_password_is_not_remembered(user_file):
    assert user_file.check("alice", "wonder")
    replace(user_file.path, line("alice", "new-one"))
    assert not user_file.check("alice", "wonder")  # the file changed: the old password is gone at once
    assert user_file.check("alice", "new-one")
