"""A real browser (headless Chromium) uploads cross-origin: a page served on one
loopback origin PUTs with a presigned URL (after a preflight) and POSTs a presigned
form to the daemon on another, reads the exposed ETag, and is refused a method no
rule allows. The Debian package ``chromium`` is installed with apt-get if missing.

Chromium is kept off every network but loopback (host resolver rules, background
services off) and is stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import Daemon
from tests.integration.test_auth import ALICE, client, empty_and_delete
from tests.integration.test_cors import daemon  # noqa: F401  (the module's daemon)

PAGE = """<!doctype html><meta charset="utf-8"><title>upload</title><script>
const cfg = %s;
async function run() {
  const out = {};
  try {
    let r = await fetch(cfg.putUrl, {method: "PUT", body: "from chromium",
                                     headers: {"Content-Type": "application/x-test"}});
    out.put = {status: r.status, etag: r.headers.get("ETag")};
    const form = new FormData();
    for (const [k, v] of Object.entries(cfg.post.fields)) form.append(k, v);
    form.append("file", new Blob(["posted by chromium"]), "b.txt");
    r = await fetch(cfg.post.url, {method: "POST", body: form});
    out.post = {status: r.status, etag: r.headers.get("ETag")};
    r = await fetch(cfg.getUrl);
    out.get = {status: r.status, body: await r.text()};
    try {
      await fetch(cfg.deleteUrl, {method: "DELETE"});
      out.delete = "allowed";
    } catch (e) {
      out.delete = "blocked";
    }
  } catch (e) {
    out.error = String(e);
  }
  await fetch("/result", {method: "POST", body: JSON.stringify(out)});
}
run();
</script>"""


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
            capture_output=True,
            timeout=900,
        )
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed and could not be installed")
    return found


class PageServer(ThreadingHTTPServer):
    page = b""
    result: dict[str, Any] | None = None
    arrived = threading.Event()


class PageHandler(BaseHTTPRequestHandler):
    server: PageServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.server.page)))
        self.end_headers()
        self.wfile.write(self.server.page)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        self.server.result = json.loads(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()
        self.server.arrived.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer(("127.0.0.1", 0), PageHandler)
    server.arrived = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def browse(url: str, profile: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            chromium(),
            "--headless",
            "--no-sandbox",  # we may be root in a container
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--no-proxy-server",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its helper processes share its process group
    )


def test_cross_origin_upload_from_chromium(
    daemon: Daemon,  # noqa: F811
    page_server: PageServer,
    tmp_path: Path,
) -> None:
    s3 = client(daemon, ALICE)
    bucket = f"browser-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    page_origin = f"http://127.0.0.1:{page_server.server_address[1]}"
    try:
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedMethods": ["GET", "PUT", "POST"],
                        "AllowedOrigins": [page_origin],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag"],
                    }
                ]
            },
        )
        s3.put_object(Bucket=bucket, Key="keep", Body=b"keep me")
        config = {
            "putUrl": s3.generate_presigned_url(
                "put_object",
                Params={"Bucket": bucket, "Key": "put.txt", "ContentType": "application/x-test"},
            ),
            "post": s3.generate_presigned_post(bucket, "posted/${filename}"),
            "getUrl": s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": "put.txt"}
            ),
            "deleteUrl": s3.generate_presigned_url(
                "delete_object", Params={"Bucket": bucket, "Key": "keep"}
            ),
        }
        page_server.page = (PAGE % json.dumps(config)).encode()
        browser = browse(page_origin + "/", tmp_path / "profile")
        try:
            assert page_server.arrived.wait(60), "the page never reported"
        finally:
            os.killpg(browser.pid, signal.SIGKILL)  # the group led by our browser's PID
            browser.wait(30)
        result = page_server.result
        assert result is not None and "error" not in result, result
        assert result["put"]["status"] == 200
        assert result["put"]["etag"]  # readable: exposed by the rule
        assert result["post"]["status"] == 204
        assert result["post"]["etag"]
        assert result["get"] == {"status": 200, "body": "from chromium"}
        assert result["delete"] == "blocked"  # the preflight of DELETE was refused
        got = s3.get_object(Bucket=bucket, Key="put.txt")
        assert got["ContentType"] == "application/x-test"
        assert s3.get_object(Bucket=bucket, Key="posted/b.txt")["Body"].read() == (
            b"posted by chromium"
        )
        assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"keep me"
    finally:
        empty_and_delete(s3, bucket)
