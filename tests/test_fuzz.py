"""Fuzzing: schemathesis against the OpenAPI document of a real server, on SQLite and on
PostgreSQL, with a backend's API key and an end user's JWT.

Every operation gets generated requests, valid and invalid; every answer must be
documented: no 5xx, a status the document declares for that operation, and a body that
matches the declared schema and content type. Requests that omit the credentials must be
refused (401).

``TIDINGS_FUZZ_EXAMPLES`` (default 25) bounds the examples per operation; ``scripts/fuzz``
runs a longer campaign. The realtime transports are not request/response operations:
the SSE stream never ends and is excluded (its refusals are tested in
``test_api_input.py``); the development routes belong to development mode.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from realtime_helpers import API_KEY, SECRET, ServerProcess, token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("TIDINGS_FUZZ_EXAMPLES", "12"))
FUZZ_USER = "fuzz-user"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    ignored_auth,
]
SENT: Counter[int] = Counter()
"""Answers by status, per server, for the summary line."""
BACKEND = {"Authorization": f"Bearer {API_KEY}"}
END_USER = {"Authorization": f"Bearer {token(FUZZ_USER, roles=['fuzzers'], ttl=86400)}"}

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def fuzzed_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"TIDINGS_DEV": "false"}
    if request.param == "postgres":
        env["TIDINGS_DATABASE_URL"] = request.getfixturevalue("postgres_database")
    server = ServerProcess(tmp_path_factory.mktemp(f"fuzz-{request.param}"), **env).start()
    _seed(server)
    SENT.clear()
    yield server
    server.stop()
    errors = sum(count for status, count in SENT.items() if status >= 500)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(
            f"\nfuzz {request.param}: {SENT.total()} requests, {errors} answered 5xx, "
            f"by status {dict(sorted(SENT.items()))}"
        )


def _seed(server: ServerProcess) -> None:
    """A few notifications the fuzzed user can list, read and delete."""
    with httpx.Client(base_url=server.http, headers=BACKEND, timeout=10) as http:
        for to in ({"users": [FUZZ_USER]}, {"roles": ["fuzzers"]}, {"all": True}):
            body = {"to": to, "title": "seed", "data": {"n": 1}, "ttl": 86400}
            assert http.post("/api/v1/notifications", json=body).status_code == 201


def _document() -> dict:
    """The OpenAPI document of an app configured as the fuzzed servers are (not started)."""
    from tidings.settings import Settings
    from tidings.web import create_app

    configured = Settings(jwt_secret=SECRET, api_keys=[API_KEY], dev=False)  # type: ignore[call-arg]
    return create_app(configured, migrate=False).openapi()


DOCUMENT = _document()
schema = (
    schemathesis.openapi.from_dict(DOCUMENT)
    .exclude(path="/api/v1/me/stream")
    .exclude(tag="development")
)


def test_the_fuzzed_document_is_the_servers(fuzzed_server: ServerProcess) -> None:
    served = httpx.get(f"{fuzzed_server.http}/openapi.json", timeout=10).json()
    assert served == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("TIDINGS_FUZZ_RANDOM") != "1",
)
def test_every_answer_is_documented(fuzzed_server: ServerProcess, case: schemathesis.Case) -> None:
    security = case.operation.definition.raw.get("security", [])
    credentials = BACKEND if any("apiKey" in scheme for scheme in security) else END_USER
    response = case.call_and_validate(
        base_url=fuzzed_server.http, headers=credentials, checks=CHECKS, timeout=10
    )
    SENT[response.status_code] += 1
