"""``twistd s3proxy``: options and the service tree."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from twisted.application.internet import TimerService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from s3proxy import affinity
from s3proxy.auth.credentials import CredentialsError, load_credentials
from s3proxy.cache.options import cached_storage, check_cache_options
from s3proxy.config import DEFAULT_LISTEN, DEFAULT_PREFIX, Settings
from s3proxy.configfile import ConfigError, option_values, read_config
from s3proxy.console import fatal, say
from s3proxy.errors import S3Error
from s3proxy.interfaces import IStorage
from s3proxy.observe.options import (
    OBSERVABILITY_PARAMETERS,
    add_admin_listener,
    check_observability_options,
)
from s3proxy.services import (
    Announcement,
    CredentialsReloader,
    InOrderMultiService,
    ListeningService,
    ProcessPlacement,
)
from s3proxy.socketactivation import inherited_listen_descriptions
from s3proxy.storage.filesystem import FilesystemStorage
from s3proxy.storage.memory import MemoryStorage
from s3proxy.storage.s3 import options as s3_options
from s3proxy.web import vhost
from s3proxy.web.app import S3Application
from s3proxy.web.drain import DrainService
from s3proxy.web.limit_options import (
    LIMIT_PARAMETERS,
    check_limit_options,
    ensure_descriptors,
    limits_from,
)
from s3proxy.web.request import make_site
from s3proxy.workers import WorkerSupervisor, endpoint_fields, tcp_address, with_backlog

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
    optParameters: list[list[Any]] = [
        [
            "config",
            "c",
            None,
            "TOML file of options by their long names (see etc/s3proxy.toml); "
            "command-line options override it.",
        ],
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
            "Storage backend: file:/path (the default, under the data directory), memory:, "
            "or s3:http://host:port (an upstream S3 store; see the --upstream-* options).",
        ],
        [
            "durability",
            None,
            "fsync",
            "fsync: an object, its metadata and its directory entry are on stable storage "
            "before the 200; none: skip the fsyncs (caches, tests). --no-fsync is none.",
        ],
        [
            "shutdown-grace",
            None,
            "30s",
            "On SIGTERM, how long in-flight requests may take to finish before their "
            "connections are closed (e.g. 30s, 2m).",
        ],
        ["prefix", "p", DEFAULT_PREFIX, "Path prefix the API is also served under."],
        ["region", None, "us-east-1", "Region reported by GetBucketLocation and HeadBucket."],
        ["threads", None, "8", "Threads for blocking file I/O."],
        [
            "workers",
            "w",
            "1",
            "Worker processes sharing the listening sockets (tcp: endpoints only); the "
            "first process supervises them and restarts any that dies.",
        ],
        [
            "credentials",
            None,
            None,
            "TOML file of users ([[users]] with access_key, secret_key, user_id, "
            "display_name, email). Without it the daemon runs open: any or no signature "
            "is accepted.",
        ],
        [
            "min-part-size",
            None,
            str(5 * 1024 * 1024),
            "Smallest size in bytes of a multipart upload's parts but the last (S3: 5 MiB).",
        ],
        [
            "multipart-expiry",
            None,
            "7d",
            "Abort multipart uploads older than this (e.g. 7d, 12h, 30m, 90s); 0 never.",
        ],
        ["cache", None, None, "Directory of a local read cache of the objects read (off)."],
        ["cache-size", None, "10G", "Size bound of the read cache, e.g. 10G, 512M or bytes."],
        ["cache-ttl", None, "0", "Seconds a cached ETag is trusted without asking the backend."],
        *s3_options.OPTIONS,
    ]
    # -- observability (access log format, admin endpoints): s3proxy/observe/ --
    optParameters += OBSERVABILITY_PARAMETERS
    # -- virtual-hosted-style requests --
    optParameters += [vhost.OPTION]
    # -- filesystem backend: where object metadata lives --
    optParameters += [
        [
            "fs-metadata",
            None,
            "auto",
            "file: backend: where object metadata is kept: xattr (a user xattr on the "
            "file), sidecar (files under <root>/.s3proxy/meta), or auto (xattrs where the "
            "filesystem keeps them, else sidecar).",
        ]
    ]
    # -- connection limits (hostile and slow clients): s3proxy/web/guard.py --
    optParameters += LIMIT_PARAMETERS
    # -- where the serving processes run: s3proxy/affinity.py --
    optParameters += [affinity.OPTION]
    optFlags = [["no-fsync", None, "Do not fsync objects before acknowledging them."]]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self.raw_args: list[str] = []
        self._listen_from_config = False

    def parseOptions(self, options: list[str] | None = None) -> None:
        # Kept so that worker processes can be started with the same options.
        self.raw_args = list(sys.argv[1:] if options is None else options)
        path = _config_path(self.raw_args)
        if path is not None:
            self._apply_config(path)
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if path is None:
                raise
            fatal(f"{e} (from the command line or config {path})", 2)

    def _apply_config(self, path: str) -> None:
        """The file's values become the defaults the command line overrides. A bad
        file stops the daemon with one line, not twistd's usage text."""
        names = [str(p[0]) for p in Options.optParameters if p[0] not in ("config", "listen")]
        flags = [str(f[0]) for f in Options.optFlags]
        try:
            values = option_values(path, read_config(path), names, flags, ["listen"])
        except ConfigError as e:
            fatal(str(e), 2)
        for name, value in values.items():
            self[name] = value
        self._listen_from_config = "listen" in values
        self.config_file = path

    def opt_listen(self, value: str) -> None:
        if self._listen_from_config:
            self["listen"] = []  # the command line's replace the file's
            self._listen_from_config = False
        self["listen"].append(value)

    opt_l = opt_listen

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = inherited_listen_descriptions() or [DEFAULT_LISTEN]
        backend = self["backend"] or "file:" + default_data_dir()
        if backend.startswith(s3_options.SCHEME):
            self["backend"] = backend
            s3_options.check_options(self)
        elif not (backend.startswith("file:") or backend == "memory:"):
            raise usage.UsageError(
                f"unknown backend {backend!r}: use file:/path, memory: or s3:http://host:port"
            )
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
        try:
            self["min-part-size"] = int(self["min-part-size"])
            if self["min-part-size"] < 0:
                raise ValueError
        except ValueError:
            raise usage.UsageError("--min-part-size must be a number of bytes") from None
        self["multipart-expiry"] = parse_duration(self["multipart-expiry"])
        self["shutdown-grace"] = parse_duration(self["shutdown-grace"])
        if self["durability"] not in ("fsync", "none"):
            raise usage.UsageError("--durability must be fsync or none")
        if self["no-fsync"]:
            self["durability"] = "none"
        self["fsync"] = self["durability"] == "fsync"
        try:
            self["workers"] = int(self["workers"])
            if self["workers"] < 1:
                raise ValueError
        except ValueError:
            raise usage.UsageError("--workers must be a positive number") from None
        if self["workers"] > 1:
            for description in self["listen"]:
                try:
                    tcp_address(description)
                except ValueError as e:
                    raise usage.UsageError(f"--workers: {e}") from None
        check_cache_options(self)
        self["users"] = None
        # -- observability --
        check_observability_options(self)
        # -- virtual-hosted-style requests --
        self["virtual-host"] = vhost.check_option(self["virtual-host"])
        # -- filesystem backend: where object metadata lives --
        if self["fs-metadata"] not in ("auto", "xattr", "sidecar"):
            raise usage.UsageError("--fs-metadata must be auto, xattr or sidecar")
        # -- connection limits --
        check_limit_options(self, parse_duration)
        # -- where the serving processes run --
        self["cpus"] = affinity.parse_cpus(str(self["cpu-affinity"]))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _config_path(args: list[str]) -> str | None:
    """The --config/-c value among the command-line arguments (the last one wins)."""
    found = None
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("--config", "-c") and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith("--config="):
            found = arg[len("--config=") :]
        elif arg.startswith("-c") and len(arg) > 2:
            found = arg[2:]
    return found


def parse_duration(text: str) -> float:
    """ "7d", "12h", "30m", "90s" or plain seconds."""
    value, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(value) * _UNITS[unit]
    except ValueError:
        raise usage.UsageError(f"not a duration: {text!r} (use e.g. 7d, 12h, 30m)") from None
    if seconds < 0:
        raise usage.UsageError(f"not a duration: {text!r}")
    return seconds


POOL_STOP_WAIT = 10.0


class ThreadPoolService(Service):
    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> Any:
        """Let the work already handed to the pool finish (requests cut off by the
        shutdown discard their temporary files there), bounded, then stop it."""
        super().stopService()
        reactor: Any = global_reactor
        deadline = time.monotonic() + POOL_STOP_WAIT
        done: Deferred[None] = Deferred()

        def check() -> None:
            idle = not self.pool.working and self.pool.q.qsize() == 0
            if idle or time.monotonic() > deadline or not self.pool.started:
                self.pool.stop()
                done.callback(None)
            else:
                reactor.callLater(0.02, check)

        check()
        return done


def make_storage(
    backend: str, pool: ThreadPool, fsync: bool, reactor: Any, options: Any = None
) -> IStorage:
    if backend == "memory:":
        return MemoryStorage()
    if backend.startswith(s3_options.SCHEME):
        return s3_options.make_s3_storage(backend, options or {}, reactor)
    root = backend[len("file:") :]
    os.makedirs(root, exist_ok=True)
    metadata = (options or {}).get("fs-metadata") or "auto"
    return FilesystemStorage(root, reactor, pool, metadata=metadata, fsync=fsync)


class ExpiryTask:
    log = Logger()

    def __init__(self, storage: IStorage, max_age: float, reactor: Any) -> None:
        self.storage = storage
        self.max_age = max_age
        self.reactor = reactor

    def __call__(self) -> Any:
        d = self.storage.expire_multipart_uploads(self.reactor.seconds() - self.max_age)
        d.addCallback(self._report)
        d.addErrback(self._failed)
        return d

    def _failed(self, failure: Failure) -> None:
        # A storage refusal (read-only root, full disk) is one line each run; anything
        # else is a bug and keeps its traceback.
        if failure.check(S3Error):
            self.log.warn(
                "expiring multipart uploads failed: {error}", error=failure.getErrorMessage()
            )
        else:
            self.log.failure("expiring multipart uploads failed", failure)

    def _report(self, removed: int) -> None:
        if removed:
            self.log.info("aborted {count} abandoned multipart uploads", count=removed)


def _is_loopback(description: str) -> bool:
    """Whether an endpoint description only listens on loopback (or a unix socket)."""
    parts = endpoint_fields(description)
    kind = parts[0]
    if kind in ("unix", "systemd"):
        return kind == "unix"
    interface = ""
    for part in parts:
        if part.startswith("interface="):
            interface = part[len("interface=") :]
    return interface.startswith("127.") or interface in ("::1", "localhost")


def warn_if_open(users: object, listen: list[str]) -> None:
    if users is not None:
        return
    log.warn(
        "no --credentials: open mode, any or no signature is accepted and ACLs are not enforced"
    )
    exposed = [d for d in listen if not _is_loopback(d)]
    if exposed:
        message = (
            "WARNING: open mode on a non-loopback address ("
            + ", ".join(exposed)
            + "): anyone who can reach it can read and write every bucket"
        )
        log.critical(message)
        say(message)


def load_users(config: Options) -> None:
    """Read --credentials; a bad file stops the daemon with one line (no usage text)."""
    if config["credentials"] and config["users"] is None:
        try:
            config["users"] = load_credentials(config["credentials"])
        except CredentialsError as e:
            fatal(str(e))


def makeService(config: Options, reactor: Any = None) -> IService:
    reactor = reactor or global_reactor
    load_users(config)
    if config["workers"] > 1:
        warn_if_open(config["users"], config["listen"])
        print(
            f"s3proxy: {config['workers']} workers serving {config['backend']} on "
            f"{', '.join(config['listen'])}",
            flush=True,
        )
        return WorkerSupervisor(
            reactor,
            config["listen"],
            config.raw_args,
            config["workers"],
            stop_grace=config["shutdown-grace"] + 5,
        )
    return make_serving_service(
        config, reactor, [serverFromString(reactor, with_backlog(d)) for d in config["listen"]]
    )


def make_serving_service(
    config: Options,
    reactor: Any,
    endpoints: list[Any],
    worker: int | None = None,
) -> MultiService:
    """The service tree of a process that serves requests: the thread pool, the
    storage, the application and one listening service per endpoint. ``worker``: its
    index among the ``--workers`` processes, None for the only serving process."""
    load_users(config)
    worker_index = worker or 0  # the first worker does what a lone process does once
    service = InOrderMultiService()
    ProcessPlacement(config["cpus"], worker).setServiceParent(service)
    pool = ThreadPool(minthreads=1, maxthreads=int(config["threads"]), name="s3proxy-io")
    ThreadPoolService(pool).setServiceParent(service)
    try:
        storage = make_storage(config["backend"], pool, config["fsync"], reactor, config)
    except (OSError, RuntimeError, ValueError) as e:
        fatal(f"cannot use backend {config['backend']}: {e}")
    storage = cached_storage(storage, config, pool, reactor, worker_index)
    settings = Settings(
        prefix=config["prefix"].rstrip("/"),
        region=config["region"],
        min_part_size=config["min-part-size"],
        virtual_host=config["virtual-host"],
    )
    expiry = config["multipart-expiry"]
    if expiry and worker_index == 0:
        # Abandoned uploads go after ``expiry``; look a few times per expiry period.
        interval = min(3600.0, max(1.0, expiry / 4))
        timer = TimerService(interval, ExpiryTask(storage, expiry, reactor))
        timer.clock = reactor
        timer.setServiceParent(service)
    users = config["users"]
    if worker_index == 0:
        warn_if_open(users, config["listen"])
    app = S3Application(storage, settings, reactor, users)
    if config["credentials"]:
        CredentialsReloader(config["credentials"], app.set_users, reactor).setServiceParent(service)
    # -- observability: the admin endpoints beside the API, or on --admin-listen --
    # -- connection limits: per process, so with --workers each worker has its own --
    ensure_descriptors(config["max-connections"])
    site = make_site(app.resource(admin=not config["admin-listen"]), reactor, limits_from(config))
    # Stopped in reverse: the listeners, then the requests in flight, then the pool.
    DrainService(
        site.connections, reactor, config["shutdown-grace"], on_stop=app.mark_stopping
    ).setServiceParent(service)
    for description, endpoint in zip(config["listen"], endpoints, strict=True):
        ListeningService(endpoint, site, description).setServiceParent(service)
    add_admin_listener(config, service, app.admin_resource(), reactor)
    log.info(
        "s3proxy serving {backend} on {listen} (prefix {prefix})",
        backend=config["backend"],
        listen=", ".join(config["listen"]),
        prefix=settings.prefix or "/",
    )
    if worker_index == 0:
        Announcement(
            f"serving {config['backend']} on {', '.join(config['listen'])}"
        ).setServiceParent(service)
    return service
