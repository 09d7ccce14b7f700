"""The CLI side of token registration: ``podium leaderboard registration-token`` issues a
token into the database, ``podium register --token`` spends it on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leaderboard import cli
from leaderboard.core.config import Settings
from tests.leaderboard.conftest import serving
from tuner.cli import userconfig
from tuner.cli.app import main

runner = CliRunner()


@pytest.fixture
def token_server(settings: Settings, migrated: str) -> Iterator[str]:
    with serving(settings, migrated, PODIUM_REGISTRATION="token") as url:
        yield url


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config" / "podium.toml"
    monkeypatch.setenv("PODIUM_CONFIG", str(path))
    for name in (*userconfig.ENV_OVERRIDES.values(), "PODIUM_REGISTRATION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return path


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


def test_register_with_a_token_from_the_host(token_server: str, migrated: str, user: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    issued = runner.invoke(cli.app, ["registration-token", "--uses", "1", "--days", "2",
                                     "--note", "ann's invitation", "--database-url", migrated])
    assert issued.exit_code == 0, issued.output
    assert "registration token for 1 participant(s), until " in issued.output
    token = issued.output.strip().splitlines()[-1]
    assert token.startswith("reg_")

    assert main(["register", "--url", token_server, "--name", "ann"]) == 2
    assert "needs a registration token" in one_error_line(capsys)
    assert main(["register", "--url", token_server, "--name", "ann", "--token",
                 token]) == 0
    assert userconfig.read_file().api_key
    capsys.readouterr()
    assert main(["register", "--url", token_server, "--name", "bob", "--token", token]) == 2
    assert "unknown, used up or expired" in one_error_line(capsys)


def test_registration_token_refuses_bad_input(migrated: str, tmp_path: Path) -> None:
    bad = runner.invoke(cli.app, ["registration-token", "--uses", "0",
                                  "--database-url", migrated])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    empty = runner.invoke(cli.app, ["registration-token", "--database-url",
                                    f"sqlite:///{tmp_path / 'empty.db'}"])
    assert empty.exit_code == 2 and empty.output.startswith("error: ")
    assert "podium leaderboard migrate" in empty.output
