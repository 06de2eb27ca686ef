"""Listening sockets handed over by systemd (``etc/s3proxy.socket``).

With socket activation systemd starts the daemon with the sockets already bound,
as file descriptors 3, 4, ... (``LISTEN_FDS``, ``LISTEN_PID``, ``LISTEN_FDNAMES``).
With no ``--listen`` the daemon then serves on exactly those, through Twisted's
``systemd:`` endpoint.
"""

from __future__ import annotations

import os
import socket

from twisted.internet import endpoints
from twisted.python.systemd import ListenFDs

_DOMAINS = {
    int(socket.AF_INET): "INET",
    int(socket.AF_INET6): "INET6",
    int(socket.AF_UNIX): "UNIX",
}


def inherited_listen_descriptions() -> list[str]:
    """``systemd:domain=...:index=N`` for each socket systemd passed to this process."""
    descriptions = []
    for index, fd in enumerate(_inherited_descriptors()):
        family = _family(fd)
        if family in _DOMAINS:
            descriptions.append(f"systemd:domain={_DOMAINS[family]}:index={index}")
    return descriptions


def _inherited_descriptors() -> list[int]:
    # Twisted's systemd: endpoint parser reads (and removes) LISTEN_FDS and LISTEN_PID
    # from the environment when twisted.internet.endpoints is imported, which twistd
    # does before any option is parsed: ask it what it found.
    parser = getattr(endpoints, "_SystemdParser", None)
    found = getattr(parser, "_sddaemon", None)
    if found is None:
        found = ListenFDs.fromEnvironment()
    return list(found.inheritedDescriptors())


def _family(fd: int) -> int | None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        return int(sock.family)
    finally:
        sock.close()
