"""Both distributions are publishable: ``python -m build`` makes an sdist and a wheel
that pass ``twine check``; the SDK's wheel requires only httpx and PyJWT; the server's
wheel, installed on its own, serves its static files and creates its database from the
migrations it ships."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from realtime_helpers import ROOT, ServerProcess


def build(source: Path, out: Path) -> list[Path]:
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    return sorted(out.iterdir())


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    out = tmp_path_factory.mktemp("dist")
    return {
        "client": build(ROOT / "clients" / "python", out / "client"),
        "server": build(ROOT, out / "server"),
    }


def test_both_distributions_pass_twine_check(dists: dict[str, list[Path]]) -> None:
    files = [str(f) for f in dists["client"] + dists["server"]]
    assert len(files) == 4, files
    subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files],
                   check=True, capture_output=True, timeout=60)  # fmt: skip


def test_the_sdk_needs_only_httpx_and_pyjwt(dists: dict[str, list[Path]]) -> None:
    wheel = next(f for f in dists["client"] if f.suffix == ".whl")
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
        names = z.namelist()
    required = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(r.split(">")[0].lower() for r in required) == ["httpx", "pyjwt"]
    assert "tidings_client/py.typed" in names
    assert "tidings_client/django/templatetags/tidings.py" in names


def test_the_server_wheel_alone_serves_static_files_and_migrates(
    dists: dict[str, list[Path]], tmp_path: Path
) -> None:
    wheel = next(f for f in dists["server"] if f.suffix == ".whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    where = subprocess.run(
        [sys.executable, "-c", "import tidings; print(tidings.__file__)"],
        env={"PYTHONPATH": str(site)}, cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(site)), where
    server = ServerProcess(tmp_path, PYTHONPATH=str(site)).start()
    try:
        for path in (
            "/static/tidings.js",
            "/static/tidings-rooms.js",
            "/static/tidings-bell.js",
            "/admin",
            "/readyz",
        ):
            assert httpx.get(server.http + path).status_code == 200, path
    finally:
        server.stop()
    assert (tmp_path / "tidings.db").exists()
