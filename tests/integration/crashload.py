"""A load that records what the daemon acknowledged, for the kill -9 tests: uploads
sent from threads over plain HTTP (each one's bytes, progress and status kept), and
the checks that run after a restart."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from tests.integration.conftest import boto3_client

CHUNK = 64 * 1024


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Upload:
    """One PUT (an object, or a part with ``query``) and what became of it."""

    key: str
    body: bytes
    query: str = ""
    hold: threading.Event | None = None  # set: send the second half of the body
    sent: int = 0
    status: int | None = None  # None: no response (the connection died first)
    etag: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def acknowledged(self) -> bool:
        return self.status == 200

    @property
    def holding(self) -> bool:
        """Stalled at half the body, as asked."""
        return self.hold is not None and self.sent == len(self.body) // 2 > 0


def send(port: int, bucket: str, upload: Upload) -> None:
    """PUT ``upload`` with a Content-Length; record how far it got and the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest("PUT", f"/{bucket}/{upload.key}{upload.query}", skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(upload.body)))
        conn.endheaders()
        view = memoryview(upload.body)
        half = len(view) // 2
        if upload.hold is not None:  # a client that stalls mid-body until released
            conn.send(view[:half])
            upload.sent = half
            upload.hold.wait(60)
            view = view[half:]
        for offset in range(0, len(view), CHUNK):
            conn.send(view[offset : offset + CHUNK])
            upload.sent += len(view[offset : offset + CHUNK])
        response = conn.getresponse()
        response.read()
        upload.etag = (response.getheader("ETag") or "").strip('"')
        upload.status = response.status
    except OSError:
        pass  # killed: not acknowledged
    finally:
        conn.close()
        upload.done.set()


def start(port: int, bucket: str, uploads: list[Upload]) -> list[threading.Thread]:
    threads = [threading.Thread(target=send, args=(port, bucket, u), daemon=True) for u in uploads]
    for thread in threads:
        thread.start()
    return threads


def wait_until(condition: Any, timeout: float = 30.0, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def open_temp_files(pid: int, root: Path) -> list[str]:
    """The temporary files of ``root`` the process ``pid`` has open."""
    tmp = str(root / ".s3proxy" / "tmp") + "/"
    found = []
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(tmp):
                found.append(target)
    except FileNotFoundError:
        pass
    return found


def check_objects(endpoint: str, bucket: str, uploads: list[Upload]) -> dict[str, bytes]:
    """After the restart: every key listed or read is exactly one complete version that
    was sent for it (nothing partial, nothing else); a key with an acknowledged upload
    is there. Returns what each present key holds."""
    s3 = boto3_client(endpoint)
    versions: dict[str, list[Upload]] = defaultdict(list)
    for upload in uploads:
        versions[upload.key].append(upload)
    listed: dict[str, tuple[int, str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            listed[entry["Key"]] = (entry["Size"], entry["ETag"].strip('"'))
    assert set(listed) <= set(versions), f"unknown keys listed: {set(listed) - set(versions)}"
    present: dict[str, bytes] = {}
    for key, sent in versions.items():
        conn = http.client.HTTPConnection("127.0.0.1", int(endpoint.rsplit(":", 1)[1]))
        conn.request("GET", f"/{bucket}/{key}")
        response = conn.getresponse()
        body = response.read()
        conn.close()
        if response.status == 404:
            assert key not in listed, key
            assert not any(u.acknowledged for u in sent), f"{key}: acknowledged, then lost"
            continue
        assert response.status == 200, (key, response.status)
        assert any(body == u.body for u in sent), f"{key}: {len(body)} bytes, no sent version"
        assert listed[key] == (len(body), md5_hex(body)), key
        if len(sent) == 1:
            assert sent[0].acknowledged or sent[0].status is None, key
        present[key] = body
    return present


def list_parts(port: int, bucket: str, key: str, upload_id: str) -> dict[int, tuple[int, str]]:
    """ListParts as {number: (size, etag)} (raw HTTP, so a 404 is an answer too)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/{bucket}/{key}?uploadId={upload_id}")
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise LookupError(f"ListParts: {response.status} {body[:200]!r}")
    tree = etree.fromstring(body)
    ns = {"s3": tree.nsmap[None]} if None in tree.nsmap else {}
    prefix = "s3:" if ns else ""
    parts = {}
    for part in tree.findall(f"{prefix}Part", ns):
        number = int(part.findtext(f"{prefix}PartNumber", namespaces=ns) or 0)
        size = int(part.findtext(f"{prefix}Size", namespaces=ns) or 0)
        etag = (part.findtext(f"{prefix}ETag", namespaces=ns) or "").strip('"')
        parts[number] = (size, etag)
    return parts


def complete(port: int, bucket: str, key: str, upload_id: str, numbers: list[int],
             etags: dict[int, str]) -> tuple[int | None, bytes]:  # fmt: skip
    """CompleteMultipartUpload; (status, body), or (None, b"") if the connection died.
    (A 200 whose body is an <Error> is a failure: the status line goes out early.)"""
    parts = "".join(
        f'<Part><PartNumber>{n}</PartNumber><ETag>"{etags[n]}"</ETag></Part>' for n in numbers
    )
    document = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", f"/{bucket}/{key}?uploadId={upload_id}", body=document)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None, b""
    finally:
        conn.close()


def complete_in_thread(
    port: int, bucket: str, key: str, upload_id: str, etags: dict[int, str]
) -> tuple[threading.Thread, list[tuple[int | None, bytes]]]:
    """Start completing with every part in ``etags``; the list gets the outcome."""
    outcome: list[tuple[int | None, bytes]] = []

    def run() -> None:
        outcome.append(complete(port, bucket, key, upload_id, sorted(etags), etags))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def completed(result: tuple[int | None, bytes]) -> bool:
    status, body = result
    return status == 200 and b"<CompleteMultipartUploadResult" in body
