"""Event templates: the store (SQLite and PostgreSQL), the sandboxed renderer, the API."""

from __future__ import annotations

import httpx
import pytest
from support import backend_headers

from tidings.errors import ValidationFailed
from tidings.store import SqlStore
from tidings.store.templates import TemplateStore
from tidings.templates import CompiledTemplate, TemplateCatalog

TASK = {
    "title": "{{ actor }} assigned you {{ task }}",
    "body": "Due {{ due }}",
    "url": "https://example.test/tasks/{{ id }}",
    "level": "warning",
    "category": "tasks",
    "locales": {"de": {"title": "{{ actor }} hat dir {{ task }} zugewiesen"}},
}


def render(source: str, data: dict | None = None) -> str:
    return CompiledTemplate("t", 1, {"title": source}).render(data or {}).default["title"]


def refused(source: str, data: dict | None = None) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        render(source, data)
    return caught.value


# -- the store, on SQLite and PostgreSQL --------------------------------------------------


async def test_every_put_raises_the_version(store: SqlStore) -> None:
    templates = TemplateStore(store)
    first = await templates.put("task.assigned", {"title": "a"}, now_ms=1_000)
    second = await templates.put("task.assigned", {"title": "b"}, now_ms=2_000)
    other = await templates.put("task.done", {"title": "c"}, now_ms=3_000)
    assert (first.version, second.version, other.version) == (1, 2, 1)
    found = await templates.get("task.assigned")
    assert found is not None
    assert (found.version, found.definition, found.updated_at) == (2, {"title": "b"}, 2_000)
    assert await templates.version("task.assigned") == (2, '{"title":"b"}')
    assert [t.type for t in await templates.all()] == ["task.assigned", "task.done"]


async def test_deleting_a_template(store: SqlStore) -> None:
    templates = TemplateStore(store)
    await templates.put("task.assigned", {"title": "a"}, now_ms=1_000)
    assert await templates.delete("task.assigned") is True
    assert await templates.delete("task.assigned") is False
    assert await templates.get("task.assigned") is None
    assert await templates.version("task.assigned") is None


async def test_templates_compile_once_per_version(store: SqlStore) -> None:
    catalog = TemplateCatalog(TemplateStore(store))
    await catalog.put("t", {"title": "v1 {{ x }}"}, now_ms=1)
    for _ in range(3):
        compiled = await catalog.compiled("t")
    assert catalog.compilations == 1
    assert compiled.render({"x": 1}).default["title"] == "v1 1"
    await catalog.put("t", {"title": "v2 {{ x }}"}, now_ms=2)
    assert (await catalog.compiled("t")).render({"x": 1}).default["title"] == "v2 1"
    assert catalog.compilations == 2


async def test_an_unknown_type_is_refused(store: SqlStore) -> None:
    catalog = TemplateCatalog(TemplateStore(store))
    with pytest.raises(ValidationFailed) as caught:
        await catalog.compiled("nope")
    assert caught.value.code == "unknown_type"


# -- the renderer ---------------------------------------------------------------------


def test_renders_data_and_every_locale() -> None:
    rendered = CompiledTemplate("task.assigned", 1, TASK).render(
        {"task": "T-7", "due": "Friday", "id": 7}, actor="bob"
    )
    assert rendered.default == {
        "title": "bob assigned you T-7",
        "body": "Due Friday",
        "url": "https://example.test/tasks/7",
    }
    # Fields a locale leaves out fall back to the default rendering.
    assert rendered.locales == {
        "de": {
            "title": "bob hat dir T-7 zugewiesen",
            "body": "Due Friday",
            "url": "https://example.test/tasks/7",
        }
    }


def test_preview_falls_back_from_region_to_language_to_default() -> None:
    compiled = CompiledTemplate("task.assigned", 1, TASK)
    data = {"task": "T", "due": "d", "id": 1}
    assert compiled.preview(data, "bob", "de-AT")["title"] == "bob hat dir T zugewiesen"
    assert compiled.preview(data, "bob", "fr")["title"] == "bob assigned you T"
    assert compiled.preview(data, "bob", None)["title"] == "bob assigned you T"


def test_a_missing_variable_is_named() -> None:
    error = refused("Hi {{ name }}")
    assert error.code == "missing_variable"
    assert "`name`" in error.message
    assert refused("{{ user.name }}", {"user": {}}).code == "missing_variable"


def test_output_is_not_html_escaped() -> None:
    assert render("{{ x }}", {"x": '<b>"&'}) == '<b>"&'


def test_a_syntax_error_names_the_field_and_line() -> None:
    with pytest.raises(ValidationFailed) as caught:
        CompiledTemplate("t", 1, {"title": "ok", "locales": {"de": {"body": "a\n{{ x ( }}"}}})
    assert caught.value.message.startswith("locales.de.body: line 2: ")


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''['__class__'] }}",
        "{{ x.__init__.__globals__ }}",
        "{% include 'settings.py' %}",
        "{% import 'x' as y %}",
        "{% from 'x' import y %}",
        "{% extends 'base' %}",
    ],
)
def test_internals_and_other_templates_are_refused_when_stored(source: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        CompiledTemplate("t", 1, {"title": source})
    assert caught.value.code == "template_refused"


@pytest.mark.parametrize(
    "source",
    [
        "{{ x|attr('__class__') }}",
        "{{ '{0.__class__}'.format(x) }}",
        "{{ items.append(1) }}",
        "{{ 'a' * 10000000 }}",
        "{{ 9 ** 999999 }}",
        "{{ range(10000000)|list }}",
        "{{ 1 / 0 }}",
    ],
)
def test_what_the_sandbox_refuses_is_a_422(source: str) -> None:
    error = refused(source, {"x": 1, "items": []})
    assert error.code in ("template_refused", "render_failed")


@pytest.mark.parametrize("name", ["config", "settings", "lipsum", "cycler", "namespace", "os"])
def test_no_settings_or_helpers_are_in_reach(name: str) -> None:
    assert refused("{{ " + name + " }}").code == "missing_variable"


# -- the API ------------------------------------------------------------------------------


async def put(client: httpx.AsyncClient, type_: str, body: dict) -> httpx.Response:
    return await client.put(f"/api/v1/templates/{type_}", json=body, headers=backend_headers())


async def test_put_get_list_delete(client: httpx.AsyncClient) -> None:
    first = await put(client, "task.assigned", TASK)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    assert first.json()["updated_at"].endswith("Z")
    second = (await put(client, "task.assigned", TASK | {"level": "error"})).json()
    assert second["version"] == 2
    assert second["level"] == "error"
    assert second["locales"]["de"]["title"] == TASK["locales"]["de"]["title"]

    got = await client.get("/api/v1/templates/task.assigned", headers=backend_headers())
    assert got.json() == second
    listed = await client.get("/api/v1/templates", headers=backend_headers())
    assert listed.json() == {"items": [second]}

    gone = await client.delete("/api/v1/templates/task.assigned", headers=backend_headers())
    assert gone.json() == {"type": "task.assigned", "deleted": True}
    again = await client.delete("/api/v1/templates/task.assigned", headers=backend_headers())
    assert again.status_code == 404
    missing = await client.get("/api/v1/templates/task.assigned", headers=backend_headers())
    assert missing.status_code == 404


async def test_templates_need_an_api_key(app, client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/templates/t", json=TASK)
    assert response.status_code == 401
    assert (await client.get("/api/v1/templates")).status_code == 401


async def test_a_template_that_does_not_parse_is_a_422_and_not_stored(
    client: httpx.AsyncClient,
) -> None:
    response = await put(client, "t", {"title": "ok", "body": "line one\n{% if %}"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "template_syntax"
    assert error["message"].startswith("body: line 2: ")
    assert (await client.get("/api/v1/templates/t", headers=backend_headers())).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x", "unknown": 1},
        {"title": ""},
        {"title": "x", "level": "loud"},
        {"title": "x", "locales": {"not a locale": {"title": "y"}}},
        {"title": "x", "category": "has space"},
        {"title": "x" * 20_001},
        {"title": "{{ ''.__class__ }}"},
    ],
)
async def test_bad_templates_are_refused(client: httpx.AsyncClient, body: dict) -> None:
    response = await put(client, "t", body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]
    assert (await client.get("/api/v1/templates/t", headers=backend_headers())).status_code == 404


async def test_the_size_limit_is_named(client: httpx.AsyncClient) -> None:
    response = await put(client, "t", {"title": "x" * 20_001})
    assert "20000" in response.json()["error"]["message"]


async def test_preview_renders_without_storing(client: httpx.AsyncClient) -> None:
    await put(client, "task.assigned", TASK)
    response = await client.post(
        "/api/v1/templates/task.assigned/preview",
        json={"data": {"task": "T-7", "due": "Friday", "id": 7}, "actor": "bob", "locale": "de-AT"},
        headers=backend_headers(),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "title": "bob hat dir T-7 zugewiesen",
        "body": "Due Friday",
        "url": "https://example.test/tasks/7",
    }
    events = await client.get("/api/v1/events", headers=backend_headers())
    assert events.json()["items"] == []


async def test_preview_errors(client: httpx.AsyncClient) -> None:
    headers = backend_headers()
    unknown = await client.post("/api/v1/templates/nope/preview", json={}, headers=headers)
    assert unknown.status_code == 404
    await put(client, "task.assigned", TASK)
    missing = await client.post(
        "/api/v1/templates/task.assigned/preview", json={"data": {}}, headers=headers
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "missing_variable"
    assert "`actor`" in missing.json()["error"]["message"]


async def test_a_process_keeps_the_current_template_until_told_it_changed(store: SqlStore) -> None:
    changed: list[str] = []
    here = TemplateCatalog(TemplateStore(store), on_change=changed.append)
    there = TemplateCatalog(TemplateStore(store))  # another process
    await here.put("t", {"title": "v1"}, now_ms=1)
    assert (await there.compiled("t")).version == 1
    await here.put("t", {"title": "v2"}, now_ms=2)
    assert changed == ["t", "t"]
    assert (await here.compiled("t")).version == 2  # its own change applies at once
    assert (await there.compiled("t")).version == 1  # remembered, no read per event
    there.forget("t")  # the broker brought the change
    assert (await there.compiled("t")).version == 2
    await here.delete("t")
    there.forget("t")
    with pytest.raises(ValidationFailed):
        await there.compiled("t")


@pytest.mark.parametrize(
    "definition",
    [
        {"title": "a {{ x }}\n", "body": "b\n\n", "url": "{{ x }}\r\n"},
        {"title": "{% set x = 'shadow' %}{{ x }}", "body": "{{ x }}"},
        {"title": "{%- if x %} yes {% endif -%}", "body": "  {{- x -}}  "},
        {"title": "{{ x }}", "body": "{{ y }}", "locales": {"de": {"title": "{{ y }}{{ x }}"}}},
    ],
)
@pytest.mark.parametrize("data", [{"x": "1", "y": "2"}, {"x": "with\x00nul", "y": "\x00"}])
def test_rendering_fields_together_is_rendering_them_one_by_one(
    definition: dict, data: dict
) -> None:
    from tidings.templates import _render

    compiled = CompiledTemplate("t", 1, definition)
    texts = compiled._texts(dict(data))
    assert texts == {f.name: _render(f, dict(data)) for f in compiled._fields}
