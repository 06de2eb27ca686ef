"""Fixtures of the IStorage contract suite: one ``storage`` per backend.

pytest-twisted is loaded through its entry point and installs the default reactor;
the async tests are marked ``@pytest_twisted.ensureDeferred`` and run in the reactor.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from twisted.internet.interfaces import IReactorThreads
from twisted.python.threadpool import ThreadPool

from s3proxy.cache import CachingStorage
from s3proxy.storage.filesystem import FilesystemStorage
from s3proxy.storage.memory import MemoryStorage
from s3proxy.storage.s3 import S3Storage, UpstreamClient, UpstreamCredentials
from tests.integration.daemon import Daemon
from tests.moto_server import ACCESS_KEY, SECRET_KEY, MotoServer, start_moto

# cache-*: the read cache over a backend; small blocks, so that objects span several.
# s3-moto: the upstream S3 backend over a moto server (cache-s3-moto: the read cache
# in front of it, the pairing the cache is meant for). s3-chain: the upstream S3
# backend over another s3proxy daemon on the filesystem backend, signatures checked.
BACKENDS = (
    "memory",
    "fs-xattr",
    "fs-sidecar",
    "cache-memory",
    "cache-fs",
    "s3-moto",
    "cache-s3-moto",
    "s3-chain",
)
CHAIN_ACCESS_KEY = "CHAINUPSTREAM0000001"
CHAIN_SECRET_KEY = "chain-upstream-secret-0123456789abcdef"
CACHE_BLOCK_SIZE = 64 * 1024


def the_reactor() -> IReactorThreads:
    """The reactor pytest-twisted installed (imported late, after it did)."""
    from twisted.internet import reactor

    return cast(IReactorThreads, reactor)


@pytest.fixture
def thread_pool() -> Iterator[ThreadPool]:
    """The daemon's blocking-I/O pool, started for one test and stopped after it."""
    pool = ThreadPool(minthreads=0, maxthreads=4, name="contract")
    pool.start()
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture
def fs_root(tmp_path: Path) -> Path:
    """The filesystem backend's root, one level below ``tmp_path`` so that the tests
    can check that nothing is ever created outside it."""
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto S3 server for the session, stopped by PID at its end."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def upstream_s3proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One s3proxy daemon (filesystem backend, SigV4 checked, any part size) for the
    session, as the upstream of the s3-chain backend; stopped by PID at its end."""
    work = tmp_path_factory.mktemp("upstream-s3proxy")
    credentials = work / "credentials.toml"
    credentials.write_text(
        f'[[users]]\naccess_key = "{CHAIN_ACCESS_KEY}"\nsecret_key = "{CHAIN_SECRET_KEY}"\n'
        'user_id = "chain"\ndisplay_name = "chain"\n'
    )
    options = ["--credentials", str(credentials), "--min-part-size", "0", "--no-fsync"]
    daemon = Daemon(f"file:{work / 'data'}", work, options).start()
    try:
        yield daemon
    finally:
        daemon.stop()


def chain_storage(daemon: Daemon) -> S3Storage:
    """An S3Storage over the upstream s3proxy; each test's buckets under a prefix of
    its own (the upstream keeps what earlier tests left)."""
    credentials = UpstreamCredentials(CHAIN_ACCESS_KEY, CHAIN_SECRET_KEY)
    client = UpstreamClient(the_reactor(), daemon.endpoint, credentials, "us-east-1")
    return S3Storage(client, bucket_prefix=f"c{uuid.uuid4().hex[:10]}-")


def s3_storage(server: MotoServer) -> S3Storage:
    """An S3Storage over a freshly reset moto, its buckets under a prefix (so the
    prefix mapping is exercised by every contract test)."""
    server.reset()
    credentials = UpstreamCredentials(ACCESS_KEY, SECRET_KEY)
    client = UpstreamClient(the_reactor(), server.endpoint, credentials, "us-east-1")
    return S3Storage(client, bucket_prefix="contract-")


@pytest.fixture(params=BACKENDS)
def storage(
    request: pytest.FixtureRequest, fs_root: Path, tmp_path: Path
) -> Iterator[MemoryStorage | FilesystemStorage | CachingStorage | S3Storage]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    if request.param in ("s3-moto", "s3-chain"):
        if request.param == "s3-moto":
            storage = s3_storage(cast(MotoServer, request.getfixturevalue("moto_server")))
        else:
            storage = chain_storage(cast(Daemon, request.getfixturevalue("upstream_s3proxy")))
        yield storage
        storage.client.close()
        return
    pool = cast(ThreadPool, request.getfixturevalue("thread_pool"))
    if request.param.startswith("cache-"):
        backend: MemoryStorage | FilesystemStorage | S3Storage
        if request.param == "cache-memory":
            backend = MemoryStorage()
        elif request.param == "cache-s3-moto":
            backend = s3_storage(cast(MotoServer, request.getfixturevalue("moto_server")))
        else:
            backend = FilesystemStorage(str(fs_root), the_reactor(), pool, fsync=False)
        cache_dir = str(tmp_path / "cache")
        yield CachingStorage(
            backend, cache_dir, 64 * 1024 * 1024, the_reactor(), pool, block_size=CACHE_BLOCK_SIZE
        )
        if isinstance(backend, S3Storage):
            backend.client.close()
        return
    metadata = request.param.removeprefix("fs-")
    yield FilesystemStorage(str(fs_root), the_reactor(), pool, metadata=metadata, fsync=False)


@pytest.fixture
def fs_storage(
    storage: MemoryStorage | FilesystemStorage | CachingStorage | S3Storage,
) -> FilesystemStorage:
    """The filesystem backends only; the memory run of a test using this is skipped."""
    if not isinstance(storage, FilesystemStorage):
        pytest.skip("filesystem backend only")
    return storage
