"""The credentials file: users by access key, and one clear line for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3proxy.auth.credentials import CredentialsError, User, load_credentials

GOOD = """
[[users]]
access_key = "AKIDALICE"
secret_key = "alice-secret"
user_id = "id-alice"
display_name = "alice"
email = "alice@example.com"

[[users]]
access_key = "AKIDBOB"
secret_key = "bob-secret"
user_id = "id-bob"
display_name = "bob"
"""


def write(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "credentials.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_loads_users_by_access_key(tmp_path: Path) -> None:
    users = load_credentials(write(tmp_path, GOOD))
    assert users == {
        "AKIDALICE": User("AKIDALICE", "alice-secret", "id-alice", "alice", "alice@example.com"),
        "AKIDBOB": User("AKIDBOB", "bob-secret", "id-bob", "bob"),
    }
    assert users["AKIDBOB"].email is None


def test_secret_stays_out_of_repr(tmp_path: Path) -> None:
    users = load_credentials(write(tmp_path, GOOD))
    assert "alice-secret" not in repr(users)


BROKEN = [
    ("", "expected one or more [[users]] tables"),
    ("users = 3", "expected one or more [[users]] tables"),
    ("[[users]\n", "not valid TOML"),
    ('[[users]]\naccess_key = "A"\n', "users[0] is missing 'secret_key'"),
    (GOOD.replace('display_name = "bob"\n', ""), "users[1] is missing 'display_name'"),
    (GOOD.replace('"AKIDBOB"', '"AKIDALICE"'), "users[1] repeats access_key 'AKIDALICE'"),
    (GOOD.replace('"AKIDBOB"', '""'), "users[1].access_key must be a non-empty string"),
    (GOOD.replace('"AKIDBOB"', "7"), "users[1].access_key must be a non-empty string"),
    (GOOD.replace('"AKIDBOB"', '"AKID BOB"'), "users[1].access_key must be printable ASCII"),
    (GOOD.replace('"AKIDBOB"', '"AKID:BOB"'), "users[1].access_key must be printable ASCII"),
    (GOOD.replace('email = "', 'mail = "'), "users[0] has unknown field 'mail'"),
    (GOOD + "\n[server]\nport = 1\n", "unknown top-level key 'server'"),
    ("users = [1]", "users[0] is not a table"),
]


@pytest.mark.parametrize(("text", "problem"), BROKEN)
def test_mistakes_are_one_clear_line(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CredentialsError) as info:
        load_credentials(path)
    message = str(info.value)
    assert message.startswith(path + ": ")
    assert problem in message
    assert "\n" not in message
    assert "secret" not in message.replace("'secret_key'", "")
    assert isinstance(info.value, ValueError)


def test_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read credentials"):
        load_credentials(str(tmp_path / "missing.toml"))
    with pytest.raises(CredentialsError, match="not UTF-8"):
        load_credentials(write(tmp_path, b"\xff\xfe"))
