"""``tidings doctor`` and ``/readyz``: what is checked and what the operator is told to fix."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from realtime_helpers import shared_redis_url, throwaway_postgres

from tidings.cli import main


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("TIDINGS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TIDINGS_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/t.db")
    monkeypatch.setenv("TIDINGS_SECRETS_FILE", str(tmp_path / "secrets.json"))
    monkeypatch.setenv("TIDINGS_API_KEYS", "k")
    monkeypatch.setenv("TIDINGS_JWT_SECRET", "s" * 40)
    return tmp_path


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["doctor"])
    return code, capsys.readouterr().out


def test_a_sound_setup_passes_and_says_the_schema_is_behind(environment, capsys) -> None:
    code, out = doctor(capsys)
    assert code == 0, out
    assert "ok    configuration" in out
    assert "warn  database" in out and "tidings migrate" in out  # nothing migrated yet
    assert "ok    broker         memory://" in out


def test_a_readable_secrets_file_fails_with_the_fix(environment, capsys) -> None:
    secrets = environment / "secrets.json"
    secrets.write_text("{}")
    secrets.chmod(0o644)
    code, out = doctor(capsys)
    assert code == 1
    assert f"chmod 600 {secrets}" in out


def test_unreachable_services_and_impossible_settings_fail(
    environment, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("TIDINGS_BROKER_URL", "redis://:hunter2@127.0.0.1:1/0")
    monkeypatch.setenv("TIDINGS_DATABASE_URL", "postgresql+asyncpg://app:hunter3@127.0.0.1:1/x")
    monkeypatch.setenv("TIDINGS_WORKERS", "2")
    code, out = doctor(capsys)
    assert code == 1
    assert "fail  database" in out and "fail  broker" in out
    assert "hunter2" not in out and "hunter3" not in out
    monkeypatch.setenv("TIDINGS_BROKER_URL", "memory://")
    code, out = doctor(capsys)
    assert code == 1
    assert "several workers with the memory broker" in out


@pytest.mark.redis
@pytest.mark.postgres
def test_postgres_and_redis_clocks_are_compared(environment, capsys, monkeypatch) -> None:
    with throwaway_postgres("tidings_doctor") as url:
        monkeypatch.setenv("TIDINGS_DATABASE_URL", url)
        monkeypatch.setenv("TIDINGS_BROKER_URL", shared_redis_url())
        assert main(["migrate"]) == 0
        code, out = doctor(capsys)
    assert code == 0, out
    assert "database clock" in out and "Redis clock" in out
    assert "ok    database" in out and "schema at" in out


async def test_readiness_names_every_background_worker(client: httpx.AsyncClient) -> None:
    ready = (await client.get("/readyz")).json()
    assert ready["ready"] is True
    assert ready["workers"] == {
        "feed": True, "writer": True, "sweeper": True, "cluster": True, "presence": True,
        "snoozes": True,
    }  # fmt: skip
