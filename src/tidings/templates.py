"""Event templates: checking, compiling once per version, and rendering in a sandbox.

Templates are Jinja2 in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with
:class:`~jinja2.StrictUndefined`: a template sees only the event's ``data`` (and
``actor``) and a few harmless globals, can neither reach attributes that start with an
underscore nor mutate what it is given, cannot include or import other templates (there
is no loader, and such tags are refused when the template is stored), and a variable
missing from ``data`` is an error instead of an empty string. Output is JSON text, so
autoescape is off.

A template is parsed and compiled when stored (so a syntax error is the writer's 422,
naming the field and the line) and again at most once per ``(type, version)`` in each
process: :class:`TemplateCatalog` keeps the compiled form, and an event costs one small
read of the current version and the rendering itself.
"""

from __future__ import annotations

import operator
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from tidings.errors import NotFound, TooLarge, ValidationFailed
from tidings.models import Variant, pick_locale
from tidings.store.templates import StoredTemplate, TemplateStore

FIELDS = ("title", "body", "url")
"""The text fields a template renders, by default and per locale."""
MAX_SEQUENCE = 100_000
"""The longest string or list a template may build with ``*`` (and the largest ``**``)."""
CACHE_SIZE = 1_000
FRESH_FOR = 5.0
"""Seconds a process trusts its copy of a type's current template without asking the store."""
_FORBIDDEN_TAGS = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
    nodes.Extends: "extends",
}


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` bounded so one expression cannot eat the memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponent too large")
            return operator.pow(left, right)
        for seq, times in ((left, right), (right, left)):
            sequence = isinstance(seq, str | list | tuple) and isinstance(times, int)
            if sequence and len(seq) * times > MAX_SEQUENCE:
                raise SecurityError(f"result longer than {MAX_SEQUENCE}")
        return operator.mul(left, right)


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, loader=None)
    # Only range (bounded by the sandbox): no lipsum, cycler, joiner, dict or namespace.
    env.globals = {"range": env.globals["range"]}
    return env


ENV = _environment()


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    """Where it comes from, for messages: ``title``, ``locales.de.body``, ``actions.0.url``."""
    template: Template
    needs: frozenset[str]
    source: str
    scoped: bool
    """Whether it sets variables or defines macros or blocks (then it renders alone)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """A template rendered for one event: the default texts, actions, and every locale."""

    default: Variant
    actions: list[dict[str, Any]] | None
    locales: dict[str, Variant] | None


class CompiledTemplate:
    """A template definition, checked and compiled: render it with an event's data."""

    def __init__(self, type_: str, version: int, definition: dict[str, Any]) -> None:
        self.type = type_
        self.version = version
        self.definition = definition
        self.level: str = definition.get("level") or "info"
        self.category: str | None = definition.get("category")
        self.critical = bool(definition.get("critical"))
        self.default = _compile_variant(definition, "")
        self.locales = {
            locale: _compile_variant(variant, f"locales.{locale}.")
            for locale, variant in (definition.get("locales") or {}).items()
        }
        self.actions = [
            {
                key: (
                    _compile(f"actions.{i}.{key}", value)
                    if key in ("label", "url") and value is not None
                    else value
                )
                for key, value in action.items()
            }
            for i, action in enumerate(definition.get("actions") or [])
        ]

        self._fields = [
            *self.default.values(),
            *(field for fields in self.locales.values() for field in fields.values()),
            *(v for action in self.actions for v in action.values() if isinstance(v, _Field)),
        ]
        self._together = _together(self._fields)

    def render(self, data: dict[str, Any], actor: str | None = None) -> Rendered:
        """Every variant; ValidationFailed (``missing_variable``, ``render_failed``) if not."""
        texts = self._texts(_context(data, actor))
        default = _variant(self.default, texts, {})
        locales = {
            locale: _variant(fields, texts, default) for locale, fields in self.locales.items()
        }
        actions = [
            {key: texts[v.name] if isinstance(v, _Field) else v for key, v in action.items()}
            for action in self.actions
        ]
        return Rendered(default, actions or None, locales or None)

    def preview(self, data: dict[str, Any], actor: str | None, locale: str | None) -> Variant:
        """The texts one reader with ``locale`` would see (fallback ``de-AT`` -> ``de``)."""
        rendered = self.render(data, actor)
        return pick_locale(rendered.locales, locale) or rendered.default

    def _texts(self, context: dict[str, Any]) -> dict[str, str]:
        """Every field rendered, by name: in one pass when possible (one Jinja context
        instead of one per field), else, or to name the field at fault, one by one."""
        for field in self._fields:
            _check_needs(field, context)
        if self._together is not None:
            try:
                parts = self._together.render(context).split(_SEPARATOR)
            except Exception:  # rendered again field by field below, to say which failed
                parts = []
            if len(parts) == len(self._fields):  # (data may hold the separator itself)
                return {field.name: part for field, part in zip(self._fields, parts, strict=True)}
        return {field.name: _render(field, context) for field in self._fields}


def check(definition: dict[str, Any]) -> None:
    """Compile every field of a definition; 422 naming the field and line if one fails."""
    CompiledTemplate("check", 0, definition)


class TemplateCatalog:
    """Templates by event type: stored in the database, compiled once per version.

    The current template of a type is remembered for ``fresh_for`` seconds, so events do
    not read the database each: a change made through this catalog applies at once here,
    and ``on_change`` (the app publishes it through the broker) makes other processes
    :meth:`forget` theirs; ``fresh_for`` bounds how stale one can be if that is lost.
    """

    def __init__(
        self,
        store: TemplateStore,
        *,
        cache_size: int = CACHE_SIZE,
        fresh_for: float = FRESH_FOR,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.cache_size = cache_size
        self.fresh_for = fresh_for
        self.on_change = on_change
        self._compiled: OrderedDict[tuple[str, int], CompiledTemplate] = OrderedDict()
        self._current: dict[str, tuple[float, CompiledTemplate]] = {}
        self.compilations = 0

    async def put(self, type_: str, definition: dict[str, Any], *, now_ms: int) -> StoredTemplate:
        check(definition)
        stored = await self.store.put(type_, definition, now_ms=now_ms)
        self._changed(type_)
        return stored

    async def delete(self, type_: str) -> bool:
        deleted = await self.store.delete(type_)
        self._changed(type_)
        return deleted

    def forget(self, type_: str) -> None:
        """Read ``type_``'s template from the store again next time (it changed)."""
        self._current.pop(type_, None)

    def _changed(self, type_: str) -> None:
        self.forget(type_)
        if self.on_change is not None:
            self.on_change(type_)

    async def compiled(self, type_: str) -> CompiledTemplate:
        """The current template of ``type_``; ValidationFailed ``unknown_type`` if none."""
        now = time.monotonic()
        remembered = self._current.get(type_)
        if remembered is not None and now - remembered[0] < self.fresh_for:
            return remembered[1]
        compiled = await self._load(type_)
        if len(self._current) >= self.cache_size:
            self._current.clear()
        self._current[type_] = (now, compiled)
        return compiled

    async def _load(self, type_: str) -> CompiledTemplate:
        found = await self.store.version(type_)
        if found is None:
            raise ValidationFailed(f"no template for event type {type_!r}", code="unknown_type")
        version, encoded = found
        key = (type_, version)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = CompiledTemplate(type_, version, orjson.loads(encoded))
            self.compilations += 1
            self._compiled[key] = compiled
            while len(self._compiled) > self.cache_size:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return compiled

    async def existing(self, type_: str) -> CompiledTemplate:
        """Like :meth:`compiled`, but a missing template is a 404 (template routes)."""
        try:
            return await self.compiled(type_)
        except ValidationFailed:
            raise NotFound(f"no template for event type {type_!r}") from None


# -- compiling ---------------------------------------------------------------------------


def _compile_variant(variant: dict[str, Any], prefix: str) -> dict[str, _Field]:
    return {
        name: _compile(prefix + name, variant[name])
        for name in FIELDS
        if variant.get(name) is not None
    }


_SEPARATOR = "\x00"
"""Between fields rendered together: no template holds it (stored text has no U+0000)."""
_TRAILING_NEWLINE = re.compile(r"(\r\n|\r|\n)\Z")
_SCOPED = (nodes.Assign, nodes.AssignBlock, nodes.Macro, nodes.CallBlock, nodes.Block)


def _together(fields: list[_Field]) -> Template | None:
    """All fields as one template, when no field's ``set`` or macro could reach the next."""
    if len(fields) < 2 or any(field.scoped for field in fields):
        return None
    # Jinja drops one trailing newline of a template: of each field, not only the last.
    sources = [_TRAILING_NEWLINE.sub("", field.source, count=1) for field in fields]
    return ENV.from_string(_SEPARATOR.join(sources))


def _compile(name: str, source: str) -> _Field:
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(
            f"{name}: line {exc.lineno}: {exc.message}", code="template_syntax"
        ) from None
    _refuse_unsafe(name, tree)
    needs = frozenset(meta.find_undeclared_variables(tree)) - frozenset(ENV.globals)
    scoped = any(True for _ in tree.find_all(_SCOPED))
    return _Field(name, ENV.from_string(tree), needs, source, scoped)


def _refuse_unsafe(name: str, tree: nodes.Template) -> None:
    """Tags that reach other templates, and attributes the sandbox would refuse anyway."""
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        tag = _FORBIDDEN_TAGS[type(node)]
        raise ValidationFailed(
            f"{name}: line {node.lineno}: {{% {tag} %}} is not allowed in templates",
            code="template_refused",
        )
    for access in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(access, nodes.Getattr):
            attr = access.attr
        else:  # nodes.Getitem
            attr = _constant(getattr(access, "arg", None))
        if isinstance(attr, str) and attr.startswith("_"):
            raise ValidationFailed(
                f"{name}: line {access.lineno}: attribute {attr!r} is not allowed in templates",
                code="template_refused",
            )


def _constant(node: Any) -> Any:
    return node.value if isinstance(node, nodes.Const) else None


# -- rendering ---------------------------------------------------------------------------


def _context(data: dict[str, Any], actor: str | None) -> dict[str, Any]:
    context = dict(data)
    if actor is not None:
        context["actor"] = actor
    return context


def _variant(fields: dict[str, _Field], texts: dict[str, str], fallback: Variant) -> Variant:
    out = {name: fallback.get(name) for name in FIELDS}
    for name, field in fields.items():
        out[name] = texts[field.name]
    if out["body"] is None:
        out["body"] = ""
    return out


def _check_needs(field: _Field, context: dict[str, Any]) -> None:
    missing = sorted(name for name in field.needs if name not in context)
    if missing:
        raise ValidationFailed(
            f"{field.name}: missing variable `{missing[0]}` in `data`", code="missing_variable"
        )


def _render(field: _Field, context: dict[str, Any]) -> str:
    _check_needs(field, context)
    try:
        return field.template.render(context)
    except UndefinedError as exc:
        raise ValidationFailed(f"{field.name}: {exc.message}", code="missing_variable") from None
    except SecurityError as exc:
        raise ValidationFailed(f"{field.name}: refused: {exc}", code="template_refused") from None
    except TooLarge:
        raise
    except Exception as exc:  # a template is code: anything it raises is the caller's 422
        raise ValidationFailed(
            f"{field.name}: rendering failed: {type(exc).__name__}: {exc}"[:500],
            code="render_failed",
        ) from None
