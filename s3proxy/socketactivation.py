"""Listening sockets handed over by systemd (``etc/s3proxy.socket``).

With socket activation systemd starts the daemon with the sockets already bound,
as file descriptors 3, 4, ... (``LISTEN_FDS``, ``LISTEN_PID``). With no ``--listen``
the daemon then serves on exactly those, through Twisted's ``systemd:`` endpoint.
"""

from __future__ import annotations

import os
import socket

FIRST_FD = 3  # SD_LISTEN_FDS_START
_DOMAINS = {
    int(socket.AF_INET): "INET",
    int(socket.AF_INET6): "INET6",
    int(socket.AF_UNIX): "UNIX",
}


def inherited_listen_descriptions(environ: dict[str, str] | None = None) -> list[str]:
    """``systemd:domain=...:index=N`` for each socket systemd passed to this process."""
    env = os.environ if environ is None else environ
    try:
        if int(env.get("LISTEN_PID", "0")) != os.getpid():
            return []
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    descriptions = []
    for index in range(count):
        family = _family(FIRST_FD + index)
        if family in _DOMAINS:
            descriptions.append(f"systemd:domain={_DOMAINS[family]}:index={index}")
    return descriptions


def _family(fd: int) -> int | None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        return int(sock.family)
    finally:
        sock.close()
