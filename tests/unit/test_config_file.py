"""``--config FILE``: every option from TOML, the command line overriding it, and one
clear line (exit 2, no usage text, no traceback) for a file that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3proxy.tap import Options
from tests.unit.tapoptions import parse

pytestmark = pytest.mark.usefixtures("data_dir")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s3proxy.toml"
    path.write_text(text)
    return path


def test_every_kind_of_value(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
listen = ["tcp:40001:interface=127.0.0.1", "unix:/tmp/s.sock"]
backend = "memory:"
threads = 3
min_part_size = 0
multipart-expiry = "2h"
durability = "none"
region = "eu-west-1"
shutdown-grace = "5s"
""",
    )
    options = parse("--config", str(config))
    assert options["listen"] == ["tcp:40001:interface=127.0.0.1", "unix:/tmp/s.sock"]
    assert options["backend"] == "memory:"
    assert options["threads"] == "3"
    assert options["min-part-size"] == 0
    assert options["multipart-expiry"] == 7200
    assert options["fsync"] is False
    assert options["region"] == "eu-west-1"
    assert options["shutdown-grace"] == 5


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    config = write(
        tmp_path, 'listen = "tcp:40001"\nregion = "eu-west-1"\nthreads = 3\nno-fsync = true\n'
    )
    options = parse(f"--config={config}", "--listen", "tcp:40002", "--region", "us-west-2")
    assert options["listen"] == ["tcp:40002"]
    assert options["region"] == "us-west-2"
    assert options["threads"] == "3"
    assert options["fsync"] is False
    assert parse("-c", str(config))["listen"] == ["tcp:40001"]


def test_defaults_without_a_file() -> None:
    options = parse()
    assert options["fsync"] is True and options["durability"] == "fsync"
    assert options["shutdown-grace"] == 30
    assert parse("--no-fsync")["fsync"] is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("threads = ", "not valid TOML"),
        ('colour = "blue"\n', "unknown option 'colour'"),
        ("listen = 5\n", "listen must be a string or a list of strings"),
        ('no-fsync = "yes"\n', "no-fsync must be true or false"),
        ("region = [1]\n", "region must be a string or a number"),
        ('threads = "many"\n', "--threads must be a positive number"),
        ('durability = "sometimes"\n', "--durability must be fsync or none"),
        ('multipart-expiry = "soon"\n', "not a duration"),
    ],
)
def test_bad_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    config = write(tmp_path, text)
    with pytest.raises(SystemExit) as exited:
        parse("--config", str(config))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("s3proxy: ")
    assert expected in err
    assert str(config) in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("--config", str(tmp_path / "nope.toml"))
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"s3proxy: cannot read config {tmp_path / 'nope.toml'}: No such file or directory\n"
    )


def test_sample_config_holds_every_option() -> None:
    sample = Path(__file__).parents[2] / "etc" / "s3proxy.toml"
    options = parse("--config", str(sample))
    text = sample.read_text()
    names = [p[0] for p in Options.optParameters if p[0] != "config"]
    names += [f[0] for f in Options.optFlags]
    for name in names:
        assert f"{name} =" in text or f"# {name} =" in text, name
    assert options["listen"]
