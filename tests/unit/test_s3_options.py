"""``--backend s3:URL`` and the --upstream-* options, parsed without a reactor."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.python.threadpool import ThreadPool

from s3proxy.storage.s3 import S3Storage
from s3proxy.tap import make_storage
from tests.unit.tapoptions import parse

SECRET = "upstream-secret-value"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "upstream.toml"
    path.write_text(f'access_key = "AKIDUP"\nsecret_key = "{SECRET}"\n')
    return path


def test_s3_backend_options(keys_file: Path) -> None:
    options = parse(
        "--backend",
        "s3:http://127.0.0.1:9000",
        "--upstream-credentials",
        str(keys_file),
        "--upstream-region",
        "eu-west-3",
        "--upstream-bucket-prefix",
        "gw1-",
        "--upstream-connections",
        "4",
    )
    storage = make_storage(options["backend"], ThreadPool(), False, Clock(), options)
    assert isinstance(storage, S3Storage)
    assert storage.prefix == "gw1-"
    assert storage.client.region == "eu-west-3"
    assert storage.client.pool.maxPersistentPerHost == 4
    assert (storage.client.credentials.access_key, storage.client.credentials.secret_key) == (
        "AKIDUP",
        SECRET,
    )
    assert SECRET not in repr(storage.client.credentials)
    assert SECRET not in repr(dict(options))


def test_defaults(keys_file: Path) -> None:
    options = parse(
        "--backend", "s3:https://s3.example.test", "--upstream-credentials", str(keys_file)
    )
    storage = make_storage(options["backend"], ThreadPool(), False, Clock(), options)
    assert isinstance(storage, S3Storage)
    assert (storage.prefix, storage.client.region) == ("", "us-east-1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "s3:"], "s3: needs the upstream's URL"),
        (["--backend", "s3:ftp://host"], "s3: needs the upstream's URL"),
        (["--backend", "s3:http://key:secret@host:9000"], "scheme://host:port only"),
        (["--backend", "s3:http://host:9000/path"], "scheme://host:port only"),
        (["--backend", "s3:http://host:9000"], "needs --upstream-credentials"),
    ],
)
def test_bad_s3_options(args: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse(*args)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('access_key = "a"\n', "needs access_key and secret_key"),
        ('access_key = "a"\nsecret_key = ""\n', "needs access_key and secret_key"),
        ('access_key = "a"\nsecret_key = "b"\nregion = "x"\n', "unknown key 'region'"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_bad_credentials_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(usage.UsageError, match=message):
        parse("--backend", "s3:http://127.0.0.1:9000", "--upstream-credentials", str(path))


def test_missing_credentials_file(tmp_path: Path) -> None:
    with pytest.raises(usage.UsageError, match="cannot read upstream credentials"):
        parse(
            "--backend",
            "s3:http://127.0.0.1:9000",
            "--upstream-credentials",
            str(tmp_path / "absent.toml"),
        )


def test_bad_prefix(keys_file: Path) -> None:
    with pytest.raises(usage.UsageError, match="invalid bucket names"):
        parse(
            "--backend",
            "s3:http://127.0.0.1:9000",
            "--upstream-credentials",
            str(keys_file),
            "--upstream-bucket-prefix",
            "UPPER_",
        )


def test_s3_backend_from_the_config_file(tmp_path: Path, keys_file: Path) -> None:
    config = tmp_path / "s3proxy.toml"
    config.write_text(
        'backend = "s3:http://127.0.0.1:9000"\n'
        f'upstream-credentials = "{keys_file}"\n'
        'upstream_bucket_prefix = "gw2-"\n'
    )
    options = parse("--config", str(config))
    storage = make_storage(options["backend"], ThreadPool(), False, Clock(), options)
    assert isinstance(storage, S3Storage)
    assert storage.prefix == "gw2-"
    assert storage.client.credentials.secret_key == SECRET


def test_timeout_and_attempts(keys_file: Path) -> None:
    options = parse(
        "--backend",
        "s3:http://127.0.0.1:9000",
        "--upstream-credentials",
        str(keys_file),
        "--upstream-timeout",
        "2.5",
        "--upstream-attempts",
        "1",
    )
    storage = make_storage(options["backend"], ThreadPool(), False, Clock(), options)
    assert isinstance(storage, S3Storage)
    assert (storage.client.timeout, storage.client.attempts) == (2.5, 1)
    defaults = parse(
        "--backend", "s3:http://127.0.0.1:9000", "--upstream-credentials", str(keys_file)
    )
    storage = make_storage(defaults["backend"], ThreadPool(), False, Clock(), defaults)
    assert isinstance(storage, S3Storage)
    assert (storage.client.timeout, storage.client.attempts) == (30.0, 4)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("--upstream-timeout", "0", "positive number of seconds"),
        ("--upstream-timeout", "-1", "positive number of seconds"),
        ("--upstream-timeout", "inf", "positive number of seconds"),
        ("--upstream-timeout", "soon", "positive number of seconds"),
        ("--upstream-attempts", "0", "from 1 to 10"),
        ("--upstream-attempts", "11", "from 1 to 10"),
        ("--upstream-attempts", "2.5", "from 1 to 10"),
    ],
)
def test_bad_timeout_and_attempts(keys_file: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse(
            "--backend",
            "s3:http://127.0.0.1:9000",
            "--upstream-credentials",
            str(keys_file),
            name,
            value,
        )
