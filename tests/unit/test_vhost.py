"""Which bucket a Host header names under ``--virtual-host``, and the option's check."""

from __future__ import annotations

import pytest
from twisted.python import usage

from s3proxy.errors import InvalidURI
from s3proxy.tap import Options
from s3proxy.web.vhost import check_option, host_bucket, split_virtual_target


@pytest.mark.parametrize(
    ("host", "bucket"),
    [
        ("photos.s3.example.test", "photos"),
        ("photos.s3.example.test:9000", "photos"),
        ("Photos.S3.Example.Test.", "photos"),
        ("my.dotted.bucket.s3.example.test", "my.dotted.bucket"),
        ("s3.example.test", None),  # the domain itself: path style
        ("s3.example.test:9000", None),
        ("127.0.0.1:9000", None),
        ("[::1]:9000", None),
        ("photos.other.test", None),
        ("xs3.example.test", None),
        ("a.s3.example.test", None),  # no bucket has a one-letter name
        ("", None),
        (None, None),
    ],
)
def test_host_bucket(host: str | None, bucket: str | None) -> None:
    assert host_bucket(host, "s3.example.test") == bucket


def test_no_domain_means_path_style() -> None:
    assert host_bucket("photos.s3.example.test", None) is None


def test_split_virtual_target() -> None:
    assert split_virtual_target(b"/", "", "b1") == ("b1", None)
    assert split_virtual_target(b"/a%2Fb//c", "", "b1") == ("b1", "a/b//c")
    assert split_virtual_target(b"/api/v1/s3/k", "/api/v1/s3", "b1") == ("b1", "k")
    with pytest.raises(InvalidURI):
        split_virtual_target(b"/%ff", "", "b1")


def test_check_option() -> None:
    assert check_option(None) is None
    assert check_option("S3.Example.Test.") == "s3.example.test"
    for bad in ("http://x", "x:90", ".x"):
        with pytest.raises(usage.UsageError):
            check_option(bad)


def test_the_daemon_option() -> None:
    options = Options()
    options.parseOptions(["--backend", "memory:", "--virtual-host", "S3.Example.Test"])
    assert options["virtual-host"] == "s3.example.test"
    plain = Options()
    plain.parseOptions(["--backend", "memory:"])
    assert plain["virtual-host"] is None
    with pytest.raises(usage.UsageError, match="--virtual-host"):
        Options().parseOptions(["--backend", "memory:", "--virtual-host", "x:80"])
