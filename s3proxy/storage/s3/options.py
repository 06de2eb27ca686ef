"""The twistd options of the S3 backend (``--backend s3:http://host:port``), kept here
so that ``s3proxy/tap.py`` only names them.

The upstream credentials file is TOML, like ``--credentials``::

    access_key = "AKIAIOSFODNN7EXAMPLE"
    secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from twisted.python import usage

from s3proxy.names import is_valid_bucket_name
from s3proxy.storage.s3.client import UpstreamClient
from s3proxy.storage.s3.signer import UpstreamCredentials
from s3proxy.storage.s3.storage import S3Storage

SCHEME = "s3:"

OPTIONS = [
    [
        "upstream-credentials",
        None,
        None,
        "s3: backend: TOML file with the upstream's access_key and secret_key.",
    ],
    ["upstream-region", None, "us-east-1", "s3: backend: region the upstream signs for."],
    [
        "upstream-bucket-prefix",
        None,
        "",
        "s3: backend: our bucket b is the upstream bucket <prefix>b (several gateways can "
        "share one upstream account).",
    ],
    [
        "upstream-connections",
        None,
        "16",
        "s3: backend: most connections kept open to the upstream.",
    ],
    [
        "upstream-timeout",
        None,
        "30",
        "s3: backend: seconds an upstream answer (or the next bytes of its body) may take "
        "before the upstream is given up on.",
    ],
    [
        "upstream-attempts",
        None,
        "4",
        "s3: backend: tries of an idempotent upstream request (not a streamed PUT, not a "
        "POST) that failed or got a 5xx, with a backoff from 0.1 s, doubling.",
    ],
]


def load_upstream_credentials(path: str) -> UpstreamCredentials:
    """The upstream's keys; a UsageError (one line, never the secret) if unusable."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as e:
        raise usage.UsageError(f"{path}: cannot read upstream credentials: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise usage.UsageError(f"{path}: not valid TOML: {e}") from None
    unknown = sorted(set(document) - {"access_key", "secret_key"})
    if unknown:
        raise usage.UsageError(f"{path}: unknown key {unknown[0]!r}")
    values = [document.get(name) for name in ("access_key", "secret_key")]
    if not all(isinstance(v, str) and v for v in values):
        raise usage.UsageError(f"{path}: needs access_key and secret_key strings")
    return UpstreamCredentials(str(values[0]), str(values[1]))


def check_options(options: Any) -> None:
    """``postOptions`` for an ``s3:`` backend: the URL, the credentials, the prefix."""
    url = options["backend"][len(SCHEME) :]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise usage.UsageError(
            f"s3: needs the upstream's URL, e.g. s3:http://127.0.0.1:9000, not {url!r}"
        )
    if parts.username or parts.password or parts.query or parts.path not in ("", "/"):
        raise usage.UsageError(
            "s3: takes scheme://host:port only (keys go in --upstream-credentials)"
        )
    if not options["upstream-credentials"]:
        raise usage.UsageError("the s3: backend needs --upstream-credentials FILE")
    options["upstream-keys"] = load_upstream_credentials(options["upstream-credentials"])
    prefix = options["upstream-bucket-prefix"]
    if prefix and not is_valid_bucket_name(prefix + "bucket"):
        raise usage.UsageError(f"--upstream-bucket-prefix {prefix!r} makes invalid bucket names")
    try:
        if int(options["upstream-connections"]) < 1:
            raise ValueError
    except ValueError:
        raise usage.UsageError("--upstream-connections must be a positive number") from None
    try:
        if not 0 < float(options["upstream-timeout"]) < float("inf"):
            raise ValueError
    except ValueError:
        raise usage.UsageError("--upstream-timeout must be a positive number of seconds") from None
    try:
        if not 1 <= int(options["upstream-attempts"]) <= 10:
            raise ValueError
    except ValueError:
        raise usage.UsageError("--upstream-attempts must be a number from 1 to 10") from None


def make_s3_storage(backend: str, options: Mapping[str, Any], reactor: Any) -> S3Storage:
    keys = options.get("upstream-keys")
    if keys is None:
        keys = load_upstream_credentials(options["upstream-credentials"])
    client = UpstreamClient(
        reactor,
        backend[len(SCHEME) :].rstrip("/"),
        keys,
        region=options.get("upstream-region") or "us-east-1",
        max_connections=int(options.get("upstream-connections") or 16),
        timeout=float(options.get("upstream-timeout") or 30),
        attempts=int(options.get("upstream-attempts") or 4),
    )
    return S3Storage(client, bucket_prefix=options.get("upstream-bucket-prefix") or "")
