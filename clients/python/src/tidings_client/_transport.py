"""The two thin pumps that drive :func:`tidings_client._core.exchange` over httpx.

``sync_method``/``async_method`` turn an operation builder from ``_operations`` into a
client method with the builder's signature and docstring, so no signature is written
twice and the sync and async clients cannot drift apart.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import httpx

from tidings_client._core import Failure, Operation, Request, Response, Retry, Sleep, exchange
from tidings_client._operations import Config

P = ParamSpec("P")
T = TypeVar("T")
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class _Base(Protocol):
    _config: Config
    _retry: Retry


class SyncBase(_Base, Protocol):
    _http: httpx.Client


class AsyncBase(_Base, Protocol):
    _http: httpx.AsyncClient


def failure(exc: httpx.TransportError) -> Failure:
    return Failure(exc, sent=not isinstance(exc, NOT_SENT))


def _response(r: httpx.Response) -> Response:
    return Response(r.status_code, r.headers, r.content)


def _send_kwargs(request: Request) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": request.headers, "params": dict(request.params)}
    if request.json is not None:
        kwargs["json"] = request.json
    return kwargs


def run_sync(http: httpx.Client, operation: Operation[T], retry: Retry) -> T:
    steps = exchange(operation, retry)
    step = next(steps)
    while True:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            outcome: Response | Failure | None = None
        else:
            try:
                sent = http.request(step.method, step.path, **_send_kwargs(step))
                outcome = _response(sent)
            except httpx.TransportError as exc:
                outcome = failure(exc)
        try:
            step = steps.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


async def run_async(http: httpx.AsyncClient, operation: Operation[T], retry: Retry) -> T:
    steps = exchange(operation, retry)
    step = next(steps)
    while True:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            outcome: Response | Failure | None = None
        else:
            try:
                sent = await http.request(step.method, step.path, **_send_kwargs(step))
                outcome = _response(sent)
            except httpx.TransportError as exc:
                outcome = failure(exc)
        try:
            step = steps.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def sync_method(
    build: Callable[Concatenate[Config, P], Operation[T]],
) -> Callable[Concatenate[SyncBase, P], T]:
    @functools.wraps(build)
    def method(self: SyncBase, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(self._http, build(self._config, *args, **kwargs), self._retry)

    return method


def async_method(
    build: Callable[Concatenate[Config, P], Operation[T]],
) -> Callable[Concatenate[AsyncBase, P], Coroutine[Any, Any, T]]:
    @functools.wraps(build)
    async def method(self: AsyncBase, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await run_async(self._http, build(self._config, *args, **kwargs), self._retry)

    return method
