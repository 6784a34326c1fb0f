"""``tidings templates push FILE`` and ``tidings templates list`` against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from realtime_helpers import API_KEY, SECRET, ServerProcess

from tidings.cli_templates import TemplateFileError, load

TOML = """
[templates."task.assigned"]
title = "{{ actor }} assigned you {{ task }}"
category = "tasks"

[templates."task.assigned".locales.de]
title = "{{ actor }} hat dir {{ task }} zugewiesen"

[templates."task.done"]
title = "{{ task }} is done"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("cli-templates")).start()
    yield process
    process.stop()


def tidings(server: ServerProcess, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env |= {"TIDINGS_API_KEYS": API_KEY, "TIDINGS_JWT_SECRET": SECRET}
    command = [sys.executable, "-m", "tidings", "templates", *args, "--url", server.http]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd, env=env)


def test_push_then_list(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    path.write_text(TOML)
    first = tidings(server, "push", str(path), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["task.assigned: version 1", "task.done: version 1"]
    again = tidings(server, "push", str(path), cwd=tmp_path)
    assert "task.assigned: version 2" in again.stdout
    listed = tidings(server, "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("task.assigned", "v2", "de"),
        ("task.done", "v2", "-"),
    ]


def test_a_template_the_server_refuses_fails_the_push(
    server: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[ok]\ntitle = "fine"\n\n[broken]\ntitle = "x"\nbody = "a\\n{% if %}"\n')
    result = tidings(server, "push", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "ok: version" in result.stdout
    assert "broken: 422 template_syntax: body: line 2:" in result.stderr


def test_files_are_read_as_toml_or_yaml(tmp_path: Path) -> None:
    yaml_file = tmp_path / "t.yaml"
    yaml_file.write_text("templates:\n  hello:\n    title: Hi {{ name }}\n")
    assert load(yaml_file) == {"hello": {"title": "Hi {{ name }}"}}
    for name, text in [("a.toml", "not toml ["), ("b.toml", ""), ("c.toml", "x = 1")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(TemplateFileError):
            load(tmp_path / name)
    with pytest.raises(TemplateFileError, match="cannot read"):
        load(tmp_path / "missing.toml")
