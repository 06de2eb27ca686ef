"""The TOML configuration file (``--config FILE``): every command-line option, by its
long name, e.g.::

    listen = ["tcp:39999:interface=127.0.0.1"]
    backend = "file:/var/lib/s3proxy"
    threads = 8
    durability = "fsync"

Options given on the command line override the file's.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping


class ConfigError(Exception):
    """A configuration file that cannot be used; the message is one line for the user."""


def read_config(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path} is not valid TOML: {e}") from None


def option_values(
    path: str,
    table: Mapping[str, object],
    parameters: Iterable[str],
    flags: Iterable[str],
    lists: Iterable[str],
) -> dict[str, object]:
    """The file's settings as option values: strings for parameters (parsed later
    exactly like the command line's), booleans for flags, lists of strings for the
    repeatable options. Keys may be spelled with "-" or "_"."""
    parameters, flags, lists = set(parameters), set(flags), set(lists)
    values: dict[str, object] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("_", "-")
        where = f"config {path}: {raw_key}"
        if key in lists:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where} must be a string or a list of strings")
            values[key] = list(value)
        elif key in flags:
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false")
            values[key] = value
        elif key in parameters:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError(f"{where} must be a string or a number")
            values[key] = str(value)
        else:
            known = ", ".join(sorted(parameters | flags | lists))
            raise ConfigError(f"config {path}: unknown option {raw_key!r} (known: {known})")
    return values
