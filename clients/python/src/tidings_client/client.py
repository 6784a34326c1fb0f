"""``Tidings`` (sync) and ``AsyncTidings``: the same methods over two transports."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

import httpx

from tidings_client import _operations as ops
from tidings_client import tokens
from tidings_client._core import Retry
from tidings_client._transport import async_method, sync_method

DEFAULT_TIMEOUT = 10.0


class _Client:
    """What both clients share: configuration and locally minted tokens."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        jwt_secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._config = ops.Config(api_key=api_key, jwt_secret=jwt_secret)
        self._retry = retry or Retry()
        self._timeout = timeout

    def token(
        self,
        user: str,
        *,
        roles: Iterable[str] = (),
        topics: Iterable[str] = (),
        locale: str | None = None,
        ttl: int = 3600,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A JWT for ``user`` signed locally with ``jwt_secret`` (HS256), for browsers.

        ``roles`` address role broadcasts, ``topics`` grant topic subscriptions,
        ``locale`` picks the language of templated notifications.
        """
        return tokens.mint(
            self._config.jwt_secret,
            user,
            roles=roles,
            topics=topics,
            locale=locale,
            ttl=ttl,
            claims=claims,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class Tidings(_Client):
    """Synchronous client: ``Tidings(url, api_key=..., jwt_secret=...)``.

    Thread-safe; use one per process. ``with Tidings(...) as t:`` closes it.
    """

    def __init__(self, url: str, *, http: httpx.Client | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        self._http = http or httpx.Client(base_url=self.url, timeout=self._timeout)

    notify = sync_method(ops.notify)
    update = sync_method(ops.update)
    retract = sync_method(ops.retract)
    event = sync_method(ops.event)
    publish = sync_method(ops.publish)
    stats = sync_method(ops.stats)
    list = sync_method(ops.list_inbox)
    unread_count = sync_method(ops.unread_count)
    mark_read = sync_method(ops.mark_read)
    mark_all_read = sync_method(ops.mark_all_read)
    delete = sync_method(ops.delete)
    connections = sync_method(ops.connections)
    send_test = sync_method(ops.send_test)
    user_inbox = sync_method(ops.user_inbox)
    put_template = sync_method(ops.put_template)
    get_template = sync_method(ops.get_template)
    templates = sync_method(ops.templates)
    delete_template = sync_method(ops.delete_template)
    preview = sync_method(ops.preview)
    events = sync_method(ops.events)
    preferences = sync_method(ops.preferences)
    update_preferences = sync_method(ops.update_preferences)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Tidings:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncTidings(_Client):
    """Asynchronous client: ``async with AsyncTidings(url, api_key=...) as t:``."""

    def __init__(self, url: str, *, http: httpx.AsyncClient | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        self._http = http or httpx.AsyncClient(base_url=self.url, timeout=self._timeout)

    notify = async_method(ops.notify)
    update = async_method(ops.update)
    retract = async_method(ops.retract)
    event = async_method(ops.event)
    publish = async_method(ops.publish)
    stats = async_method(ops.stats)
    list = async_method(ops.list_inbox)
    unread_count = async_method(ops.unread_count)
    mark_read = async_method(ops.mark_read)
    mark_all_read = async_method(ops.mark_all_read)
    delete = async_method(ops.delete)
    connections = async_method(ops.connections)
    send_test = async_method(ops.send_test)
    user_inbox = async_method(ops.user_inbox)
    put_template = async_method(ops.put_template)
    get_template = async_method(ops.get_template)
    templates = async_method(ops.templates)
    delete_template = async_method(ops.delete_template)
    preview = async_method(ops.preview)
    events = async_method(ops.events)
    preferences = async_method(ops.preferences)
    update_preferences = async_method(ops.update_preferences)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTidings:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
