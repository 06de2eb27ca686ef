"""Parsing ``twistd s3proxy`` options in tests, without twistd."""

from __future__ import annotations

from s3proxy.tap import Options


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options
