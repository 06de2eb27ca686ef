#!/usr/bin/env python3
"""Memory use of a large multipart upload through the daemon.

Starts ``twistd -n s3proxy`` (as a user does, from the current Python environment) on a
temporary filesystem root on 127.0.0.1, streams a multipart upload of ``--size`` bytes in
``--part-size`` parts, completes it, and samples the daemon's VmRSS every 50 ms during
the parts phase and during completion. Neither the object nor a part is ever held in
memory here: parts are generated from a repeating random block as they are sent.

Prints one line per phase (MB/s, peak RSS; MB = 10**6 bytes) and exits non-zero if
either peak reaches ``--max-rss-mb`` (100). Usage::

    python bench/multipart_rss.py [--size 1GiB] [--part-size 64MiB]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from servers import free_port, twistd_command

MB = 1_000_000
BLOCK_SIZE = 1024 * 1024
SEND_SIZE = 256 * 1024
SAMPLE_INTERVAL = 0.05
BUCKET = "bench"
KEY = "large-object"
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``1073741824``, ``1GiB``, ``64M``, ``512k``: binary units."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1GiB, 64MiB, 1048576)")
    return int(match.group(1)) * _UNITS[match.group(2)]


# -- the daemon (started as bench/servers.py starts it) ---------------------------------


def vm_rss(pid: int) -> int:
    """The resident set size of a process, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Daemon:
    workdir: Path
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "daemon.log"

    def start(self, timeout: float = 20.0) -> None:
        self.port = free_port()
        args = [
            *twistd_command(),
            "-n",
            "--pidfile=",
            "--logfile",
            str(self.log_path),
            "s3proxy",
            "--listen",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--backend",
            f"file:{self.workdir / 'data'}",
            *self.extra_args,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            args, cwd=self.workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"s3proxy exited with {self.process.returncode}: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("s3proxy did not start listening in time")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


# -- sampling --------------------------------------------------------------------------


class RssSampler:
    """Reads a process's VmRSS every ``interval`` seconds on a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        self.peak = max(self.peak, vm_rss(self.pid))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the state at the end of the phase counts too


# -- the body of a part ----------------------------------------------------------------


class GeneratedPart:
    """A readable file-like object of ``length`` bytes: ``block`` repeated, starting at
    ``offset`` into the object, produced on demand (http.client calls ``read``)."""

    def __init__(self, block: bytes, offset: int, length: int) -> None:
        self._block = block
        self._position = offset
        self._remaining = length

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        if size < 0:
            size = SEND_SIZE
        size = min(size, self._remaining)
        start = self._position % len(self._block)
        chunk = self._block[start : start + size]
        self._position += len(chunk)
        self._remaining -= len(chunk)
        return chunk


def part_md5(block: bytes, offset: int, length: int) -> str:
    md5 = hashlib.md5()
    source = GeneratedPart(block, offset, length)
    while chunk := source.read(BLOCK_SIZE):
        md5.update(chunk)
    return md5.hexdigest()


# -- HTTP ------------------------------------------------------------------------------


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | GeneratedPart = b"",
    length: int | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=SEND_SIZE)
    try:
        size = len(body) if isinstance(body, bytes) else length
        conn.request(method, path, body=body, headers={"Content-Length": str(size)})
        response = conn.getresponse()
        data = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, data
    finally:
        conn.close()


def xml_value(body: bytes, tag: str) -> str | None:
    match = re.search(rf"<{tag}>([^<]*)</{tag}>".encode(), body)
    return match.group(1).decode() if match else None


def check(status: int, body: bytes, what: str, expected: int = 200) -> None:
    if status != expected or b"<Error>" in body:
        raise RuntimeError(f"{what} failed: HTTP {status}: {body[:500]!r}")


@dataclass
class Phase:
    name: str
    seconds: float
    peak_rss: int
    samples: int


def upload(daemon: Daemon, size: int, part_size: int) -> list[Phase]:
    port = daemon.port
    block = os.urandom(BLOCK_SIZE)
    status, _, body = request(port, "PUT", f"/{BUCKET}")
    check(status, body, "CreateBucket")
    status, _, body = request(port, "POST", f"/{BUCKET}/{KEY}?uploads")
    check(status, body, "CreateMultipartUpload")
    upload_id = xml_value(body, "UploadId")
    if not upload_id:
        raise RuntimeError(f"no UploadId in {body[:500]!r}")

    parts: list[tuple[int, str]] = []
    expected_md5s: dict[tuple[int, int], str] = {}
    with RssSampler(daemon.pid) as parts_rss:
        started = time.monotonic()
        for number, offset in enumerate(range(0, size, part_size), 1):
            length = min(part_size, size - offset)
            path = f"/{BUCKET}/{KEY}?partNumber={number}&uploadId={upload_id}"
            status, headers, body = request(
                port, "PUT", path, GeneratedPart(block, offset, length), length
            )
            check(status, body, f"UploadPart {number}")
            parts.append((number, headers["etag"]))
        parts_seconds = time.monotonic() - started
    # Check the ETags after the clock stopped (parts of one shape share an MD5).
    for (number, etag), offset in zip(parts, range(0, size, part_size), strict=True):
        length = min(part_size, size - offset)
        shape = (offset % len(block), length)
        if shape not in expected_md5s:
            expected_md5s[shape] = part_md5(block, offset, length)
        if etag.strip('"') != expected_md5s[shape]:
            raise RuntimeError(f"part {number}: ETag {etag}, expected {expected_md5s[shape]}")

    xml = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts)
    document = f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>".encode()
    with RssSampler(daemon.pid) as complete_rss:
        started = time.monotonic()
        status, _, body = request(port, "POST", f"/{BUCKET}/{KEY}?uploadId={upload_id}", document)
        complete_seconds = time.monotonic() - started
    check(status, body, "CompleteMultipartUpload")
    etag = xml_value(body, "ETag") or ""
    digests = b"".join(bytes.fromhex(e.strip('"')) for _, e in parts)
    expected = f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'
    if etag.replace("&quot;", '"') != expected:
        raise RuntimeError(f"completed ETag {etag}, expected {expected}")
    status, headers, body = request(port, "HEAD", f"/{BUCKET}/{KEY}")
    check(status, body, "HeadObject")
    if int(headers["content-length"]) != size:
        raise RuntimeError(f"object is {headers['content-length']} bytes, not {size}")
    return [
        Phase("parts", parts_seconds, parts_rss.peak, parts_rss.samples),
        Phase("complete", complete_seconds, complete_rss.peak, complete_rss.samples),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Memory use of a large multipart upload.")
    parser.add_argument("--size", type=parse_size, default=1024**3, help="object size (1GiB)")
    parser.add_argument("--part-size", type=parse_size, default=64 * 1024**2, help="(64MiB)")
    parser.add_argument("--max-rss-mb", type=float, default=100.0, help="failure threshold")
    parser.add_argument("--no-fsync", action="store_true", help="start the daemon so")
    args = parser.parse_args(argv)
    if args.size < 1 or args.part_size < 1:
        parser.error("--size and --part-size must be positive")
    if -(-args.size // args.part_size) > 10000:
        parser.error("more than 10000 parts: use a larger --part-size")

    workdir = Path(tempfile.mkdtemp(prefix="s3proxy-bench-"))
    daemon = Daemon(workdir, ["--no-fsync"] if args.no_fsync else [])
    try:
        daemon.start()
        idle = vm_rss(daemon.pid)
        try:
            phases = upload(daemon, args.size, args.part_size)
        except Exception:
            sys.stderr.write(f"daemon log (tail):\n{daemon.log_tail()}\n")
            raise
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    parts = -(-args.size // args.part_size)
    print(
        f"{args.size / MB:.0f} MB in {parts} parts of {args.part_size / MB:.1f} MB; "
        f"daemon RSS when idle {idle / MB:.1f} MB"
    )
    print(f"{'phase':<10} {'seconds':>8} {'MB/s':>8} {'peak RSS MB':>12} {'samples':>8}")
    failed = False
    for phase in phases:
        rate = args.size / MB / phase.seconds if phase.seconds else float("inf")
        print(
            f"{phase.name:<10} {phase.seconds:>8.2f} {rate:>8.1f} "
            f"{phase.peak_rss / MB:>12.1f} {phase.samples:>8}"
        )
        failed = failed or phase.peak_rss >= args.max_rss_mb * MB
    if failed:
        print(f"FAIL: peak RSS reached {args.max_rss_mb:.0f} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
