"""The command line: first-run secrets, tokens, send, migrate, serve's refusals."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from tidings.cli import _audience, _base_url, main
from tidings.credentials import ensure_secrets
from tidings.settings import Settings


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)
    return tmp_path


def test_first_run_generates_secrets_readable_only_by_the_owner(workdir: Path) -> None:
    boot = ensure_secrets(Settings())
    secrets_file = workdir / ".tidings" / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert boot.generated_secret and boot.generated_api_key
    assert boot.settings.dev is True
    again = ensure_secrets(Settings())
    assert again.settings.jwt_secret == boot.settings.jwt_secret
    assert again.settings.api_keys == boot.settings.api_keys


def test_configured_secrets_are_used_and_nothing_is_generated(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_JWT_SECRET", "configured-secret")
    monkeypatch.setenv("TIDINGS_API_KEYS", "k1, k2")
    boot = ensure_secrets(Settings())
    assert not boot.generated_any
    assert boot.settings.api_keys == ["k1", "k2"]
    assert not (workdir / ".tidings").exists()


def test_settings_come_from_a_toml_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "tidings.toml").write_text('heartbeat = 12\napi_keys = ["from-file"]\n')
    assert Settings().heartbeat == 12
    monkeypatch.setenv("TIDINGS_HEARTBEAT", "7")
    assert Settings().heartbeat == 7  # the environment wins over the file
    assert Settings().api_keys == ["from-file"]


def test_token_prints_a_jwt_signed_with_the_secret(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--user", "alice", "--roles", "admin,staff", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    secret = json.loads((workdir / ".tidings" / "secrets.json").read_text())["jwt_secret"]
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["admin", "staff"]


def test_migrate_creates_the_schema(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert (workdir / "tidings.db").exists()
    assert main(["migrate"]) == 0  # idempotent


def test_serve_refuses_several_workers_without_redis(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tidings", "serve", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        env={k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")},
    )
    assert result.returncode == 2
    assert "TIDINGS_BROKER_URL=redis://" in result.stderr


def test_send_targets_are_parsed() -> None:
    assert _audience(["all"]) == {"all": True}
    assert _audience(["user:a", "role:r", "user:b"]) == {"users": ["a", "b"], "roles": ["r"]}
    with pytest.raises(ValueError, match="expected user:U"):
        _audience(["group:x"])
    with pytest.raises(ValueError, match="--to all already reaches everyone"):
        _audience(["user:bob", "all"])


def test_send_refuses_all_combined_with_other_targets(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = ["send", "--to", "all", "--to", "user:bob", "--title", "t", "--port", "9"]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert "--to all" in error and "--to user:bob" in error
    assert main(["send", "--to", "all", "--to", "all", "--title", "t"]) == 2


def test_send_finds_the_configured_server(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _base_url(Settings()) == "http://127.0.0.1:8000"
    monkeypatch.setenv("TIDINGS_PORT", "9001")
    assert _base_url(Settings()) == "http://127.0.0.1:9001"
    assert _base_url(Settings(), port=9002) == "http://127.0.0.1:9002"
    monkeypatch.setenv("TIDINGS_PUBLIC_URL", "https://notify.example.com/")
    assert _base_url(Settings()) == "https://notify.example.com"
    assert _base_url(Settings(), port=9002) == "http://127.0.0.1:9002"  # --port: this host


def test_a_secrets_file_others_can_read_is_warned_about(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_secrets(Settings())
    secrets_file = workdir / ".tidings" / "secrets.json"
    ensure_secrets(Settings())
    assert not caplog.records  # 0600: nothing to say
    secrets_file.chmod(0o644)
    ensure_secrets(Settings())
    warning = caplog.records[-1]
    assert warning.levelno == logging.WARNING
    assert str(secrets_file) in warning.getMessage()
    assert "0644" in warning.getMessage() and "chmod 600" in warning.getMessage()


def test_serve_warns_at_start_about_an_open_secrets_file(tmp_path: Path) -> None:
    from realtime_helpers import ServerProcess

    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"jwt_secret": "s" * 43, "api_key": "tk_generated"}))
    secrets_file.chmod(0o640)
    server = ServerProcess(tmp_path, TIDINGS_API_KEYS="").start()
    server.stop()
    log = server.log.read_text()
    assert f"WARNING: secrets file {secrets_file} has mode 0640" in log
    assert "tk_generated" in log  # the generated key is shown, as on every first run


def test_send_creates_a_notification_through_a_running_server(tmp_path: Path) -> None:
    import httpx
    from realtime_helpers import API_KEY, SECRET, ServerProcess, token

    server = ServerProcess(tmp_path).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        env |= {"TIDINGS_API_KEYS": API_KEY, "TIDINGS_JWT_SECRET": SECRET}
        command = [sys.executable, "-m", "tidings", "send"]
        ways = {  # each way of naming the server: --url, --port, TIDINGS_PUBLIC_URL, _PORT
            "Deployed": (["--url", server.http], {}),
            "Migrated": (["--port", str(server.port)], {}),
            "Scaled": ([], {"TIDINGS_PUBLIC_URL": server.http + "/"}),
            "Rotated": ([], {"TIDINGS_PORT": str(server.port)}),
        }
        for title, (options, extra) in ways.items():
            result = subprocess.run(
                [*command, *options, "--to", "user:alice", "--to", "role:ops", "--title", title],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
                env=env | extra,
            )
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["to"] == {
                "users": ["alice"],
                "roles": ["ops"],
                "all": False,
            }
        inbox = httpx.get(
            f"{server.http}/api/v1/me/notifications",
            headers={"Authorization": f"Bearer {token('alice')}"},
        )
        assert [item["title"] for item in inbox.json()["items"]] == [*reversed(ways)]
    finally:
        server.stop()
