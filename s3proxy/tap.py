"""``twistd s3proxy``: options and the service tree."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import reactor as global_reactor
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.threadpool import ThreadPool

from s3proxy.config import DEFAULT_LISTEN, DEFAULT_PREFIX, Settings
from s3proxy.interfaces import IStorage
from s3proxy.storage.filesystem import FilesystemStorage
from s3proxy.storage.memory import MemoryStorage
from s3proxy.web.app import S3Application
from s3proxy.web.request import make_site

log = Logger()


def default_data_dir() -> str:
    """$S3PROXY_DATA, else the systemd StateDirectory, else ~/.local/share/s3proxy."""
    if os.environ.get("S3PROXY_DATA"):
        return os.environ["S3PROXY_DATA"]
    if os.environ.get("STATE_DIRECTORY"):
        return os.environ["STATE_DIRECTORY"].split(":")[0]
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "s3proxy")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Serve an S3-compatible API. With no options: on 127.0.0.1:39999, storing "
        "objects as plain files under a default data directory."
    )
    optParameters = [
        [
            "listen",
            "l",
            None,
            "Twisted endpoint to listen on, repeatable (default " + DEFAULT_LISTEN + "), "
            "e.g. tcp:39999:interface=0.0.0.0, unix:/run/s3proxy.sock, "
            "systemd:domain=INET:index=0.",
        ],
        [
            "backend",
            "b",
            None,
            "Storage backend: file:/path (the default, under the data directory) or memory:.",
        ],
        ["prefix", "p", DEFAULT_PREFIX, "Path prefix the API is also served under."],
        ["region", None, "us-east-1", "Region reported by GetBucketLocation and HeadBucket."],
        ["threads", None, "8", "Threads for blocking file I/O."],
    ]
    optFlags = [["no-fsync", None, "Do not fsync objects before acknowledging them."]]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, value: str) -> None:
        self["listen"].append(value)

    opt_l = opt_listen

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        backend = self["backend"] or "file:" + default_data_dir()
        if not (backend.startswith("file:") or backend == "memory:"):
            raise usage.UsageError(f"unknown backend {backend!r}: use file:/path or memory:")
        if backend.startswith("file:") and not backend[len("file:") :]:
            raise usage.UsageError("file: needs a directory, e.g. file:/var/lib/s3proxy")
        self["backend"] = backend
        prefix = self["prefix"]
        if prefix and not prefix.startswith("/"):
            raise usage.UsageError("--prefix must start with /")
        try:
            if int(self["threads"]) < 1:
                raise ValueError
        except ValueError:
            raise usage.UsageError("--threads must be a positive number") from None


class ThreadPoolService(Service):
    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> Any:
        super().stopService()
        self.pool.stop()


def make_storage(backend: str, pool: ThreadPool, fsync: bool, reactor: Any) -> IStorage:
    if backend == "memory:":
        return MemoryStorage()
    root = backend[len("file:") :]
    os.makedirs(root, exist_ok=True)
    return FilesystemStorage(root, reactor, pool, fsync=fsync)


def makeService(config: Options, reactor: Any = None) -> IService:
    reactor = reactor or global_reactor
    service = MultiService()
    pool = ThreadPool(minthreads=1, maxthreads=int(config["threads"]), name="s3proxy-io")
    ThreadPoolService(pool).setServiceParent(service)
    try:
        storage = make_storage(config["backend"], pool, not config["no-fsync"], reactor)
    except (OSError, RuntimeError, ValueError) as e:
        sys.stderr.write(f"s3proxy: cannot use backend {config['backend']}: {e}\n")
        raise SystemExit(1) from None
    settings = Settings(prefix=config["prefix"].rstrip("/"), region=config["region"])
    site = make_site(S3Application(storage, settings).resource(), reactor)
    for description in config["listen"]:
        endpoint = serverFromString(reactor, description)
        StreamServerEndpointService(endpoint, site).setServiceParent(service)
    where = config["backend"]
    log.info(
        "s3proxy serving {backend} on {listen} (prefix {prefix})",
        backend=where,
        listen=", ".join(config["listen"]),
        prefix=settings.prefix or "/",
    )
    print(f"s3proxy: serving {where} on {', '.join(config['listen'])}", flush=True)
    return service
