#!/usr/bin/env python3
"""The machine's own ceiling for storing an upload: a bare Python loop.

A thread per connection reads an HTTP/1.1 request head, then receives the body with
``recv_into`` into one reused 1 MiB buffer, feeds each chunk to ``hashlib.md5`` and writes
it to a file, and (unless ``--no-fsync``) fsyncs the file before answering ``200`` with
the MD5 as ``ETag``: the least any S3 PUT must do with the same bytes, with no parsing,
routing, signing or event loop. ``DELETE`` removes the file. Nothing else is served.

    python bench/ceiling.py --port PORT --dir DIR [--no-fsync]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import threading
from pathlib import Path

BUFFER_SIZE = 1024 * 1024


def _respond(conn: socket.socket, status: str, headers: str = "") -> None:
    conn.sendall(f"HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\n\r\n".encode())


def serve_connection(conn: socket.socket, root: Path, fsync: bool) -> None:
    buffer = bytearray(BUFFER_SIZE)
    view = memoryview(buffer)
    pending = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            path = root / (target.split("?", 1)[0].strip("/").replace("/", "_") or "_")
            if method == "PUT":
                md5 = hashlib.md5()
                with open(path, "wb", buffering=0) as f:
                    first, pending = pending[:length], pending[length:]
                    md5.update(first)
                    f.write(first)
                    remaining = length - len(first)
                    while remaining:
                        n = conn.recv_into(view[: min(BUFFER_SIZE, remaining)])
                        if n == 0:
                            return
                        chunk = view[:n]
                        md5.update(chunk)
                        f.write(chunk)
                        remaining -= n
                    if fsync:
                        os.fsync(f.fileno())
                _respond(conn, "200 OK", f'ETag: "{md5.hexdigest()}"\r\n')
            elif method == "DELETE":
                path.unlink(missing_ok=True)
                _respond(conn, "204 No Content")
            else:
                pending = pending[length:]
                _respond(conn, "405 Method Not Allowed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--no-fsync", action="store_true")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    listener = socket.create_server(("127.0.0.1", args.port), backlog=128)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(
            target=serve_connection, args=(conn, args.dir, not args.no_fsync), daemon=True
        ).start()


if __name__ == "__main__":
    main()
