"""The users a gateway knows, read from a TOML credentials file.

::

    [[users]]
    access_key = "AKIAIOSFODNN7EXAMPLE"
    secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    user_id = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
    display_name = "alice"
    email = "alice@example.com"   # optional
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

_REQUIRED = ("access_key", "secret_key", "user_id", "display_name")
_OPTIONAL = ("email",)
# ':' ends the key in a SigV2 header, ',' and whitespace end a SigV4 component.
_ACCESS_KEY = re.compile(r"[!-~]+")
_ACCESS_KEY_FORBIDDEN = frozenset(":,/")


class CredentialsError(ValueError):
    """A credentials file that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class User:
    access_key: str
    secret_key: str = field(repr=False)
    user_id: str
    display_name: str
    email: str | None = None


def load_credentials(path: str) -> dict[str, User]:
    """Access key -> User, from the TOML file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CredentialsError(f"{path}: cannot read credentials: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: not UTF-8 text") from None
    return credentials_from_string(text, source=path)


def credentials_from_string(text: str, source: str = "<credentials>") -> dict[str, User]:
    """The pure part of :func:`load_credentials`; ``source`` names the text in errors."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CredentialsError(f"{source}: not valid TOML: {e}") from None
    unknown = sorted(set(document) - {"users"})
    if unknown:
        raise CredentialsError(f"{source}: unknown top-level key {unknown[0]!r}")
    tables = document.get("users")
    if not isinstance(tables, list) or not tables:
        raise CredentialsError(f"{source}: expected one or more [[users]] tables")
    users: dict[str, User] = {}
    for index, table in enumerate(tables):
        user = _user(table, f"{source}: users[{index}]")
        if user.access_key in users:
            raise CredentialsError(
                f"{source}: users[{index}] repeats access_key {user.access_key!r}"
            )
        users[user.access_key] = user
    return users


def _user(table: Any, where: str) -> User:
    if not isinstance(table, dict):
        raise CredentialsError(f"{where} is not a table")
    unknown = sorted(set(table) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise CredentialsError(f"{where} has unknown field {unknown[0]!r}")
    values: dict[str, str] = {}
    for name in _REQUIRED + _OPTIONAL:
        if name not in table:
            if name in _REQUIRED:
                raise CredentialsError(f"{where} is missing {name!r}")
            continue
        value = table[name]
        if not isinstance(value, str) or not value:
            raise CredentialsError(f"{where}.{name} must be a non-empty string")
        values[name] = value
    key = values["access_key"]
    if not _ACCESS_KEY.fullmatch(key) or _ACCESS_KEY_FORBIDDEN & set(key):
        raise CredentialsError(
            f"{where}.access_key must be printable ASCII without spaces, ':', ',' or '/'"
        )
    return User(**values)
