"""Topic rules, without I/O: names, globs, permissions, message ids and frames.

A topic is a name of 1-200 of ``A-Z a-z 0-9 _ . : -``. A subscription may also be a
glob over names (``logs.*``, ``room.?``, ``logs.[ab]*``): ``*`` any run of characters,
``?`` one character, ``[...]`` one of a set or range. Globs are matched with
:func:`fnmatch.fnmatchcase`, the same syntax Redis ``PSUBSCRIBE`` understands for
these characters.

Message ids are ``<unix ms>-<sequence>``, minted by the broker's history store when the
message is appended (a Redis Stream entry id, or the memory store's counter): they
increase along each topic's history, so "the last id seen" is a resume point, and
``ts`` (unix milliseconds) is the id's first part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

import orjson

from tidings.errors import Forbidden, ValidationFailed

MAX_TOPIC_LENGTH = 200
TOPIC_PATTERN = rf"^[A-Za-z0-9_.:\-]{{1,{MAX_TOPIC_LENGTH}}}$"
"""A topic name, on every route that takes one: publish, ``subscribe``, SSE ``?topics=``."""
WILDCARDS = frozenset("*?[]")
TOPIC_FORBIDDEN = "topic_forbidden"
"""The one code for a topic the token's ``topics`` claim does not grant (WebSocket and SSE)."""
BAD_PATTERN = "bad_pattern"
"""A malformed glob (``logs.[a``, ``logs.[]``)."""

_NAME = re.compile(TOPIC_PATTERN)
_GLOB = re.compile(r"^(?:[A-Za-z0-9_.:\-*?]|\[[A-Za-z0-9_.:\-]+\])+$")


def valid_topic(topic: str) -> bool:
    return _NAME.fullmatch(topic) is not None


def is_pattern(name: str) -> bool:
    return not WILDCARDS.isdisjoint(name)


def check_topic(topic: Any, *, pattern_ok: bool = False) -> str:
    """``topic`` when it names one topic (or, with ``pattern_ok``, a well-formed glob)."""
    if not isinstance(topic, str) or not 0 < len(topic) <= MAX_TOPIC_LENGTH:
        raise ValidationFailed(f"a topic is a name of 1..{MAX_TOPIC_LENGTH} characters")
    if is_pattern(topic):
        if not pattern_ok:
            raise ValidationFailed(
                f"topic {topic[:40]!r}: a glob is not a topic; name one topic", code=BAD_PATTERN
            )
        if _GLOB.fullmatch(topic) is None:
            raise ValidationFailed(
                f"glob {topic[:40]!r}: use topic characters, * ? and [set] without nesting",
                code=BAD_PATTERN,
            )
        return topic
    if not valid_topic(topic):
        raise ValidationFailed(f"topic {topic[:40]!r}: use only A-Z a-z 0-9 _ . : -")
    return topic


def matches(topic: str, pattern: str) -> bool:
    """Whether a topic name falls under a glob (or equals a plain name)."""
    return fnmatchcase(topic, pattern)


def grants(claim: Iterable[str], name: str) -> bool:
    """Whether a claim (``topics`` or ``publish``: names and globs) covers ``name``.

    A plain name is granted when a claimed glob matches it. A glob is granted only when
    every topic it can match is: the claim holds the same glob, ``*``, or a prefix glob
    (``logs.*``) that the subscription's literal start already falls under
    (``logs.api.*``, ``logs.[ab]*``).
    """
    if not is_pattern(name):
        return any(fnmatchcase(name, pattern) for pattern in claim)
    for pattern in claim:
        if pattern in (name, "*"):
            return True
        stem = pattern[:-1]
        if pattern.endswith("*") and not is_pattern(stem) and name.startswith(stem):
            return True
    return False


def check_subscription(name: Any, claim: Iterable[str]) -> str:
    """``name`` (a topic or glob) when valid and granted; else why not (422 or 403)."""
    check_topic(name, pattern_ok=True)
    if not grants(claim, name):
        raise Forbidden(
            f"topic not allowed by the token's `topics` claim: {name}", code=TOPIC_FORBIDDEN
        )
    return name


def check_publish(topic: Any, claim: Iterable[str]) -> str:
    """``topic`` when a client may publish to it (its JWT ``publish`` claim); else why not."""
    check_topic(topic)
    if not grants(claim, topic):
        raise Forbidden(f"the token's `publish` claim does not allow topic {topic}")
    return topic


# -- message ids ------------------------------------------------------------------------

MessageId = tuple[int, int]


def parse_id(text: Any) -> MessageId | None:
    """``(ms, seq)`` of a message id, or None if ``text`` is not one."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    ms, dash, seq = text.partition("-")
    if not dash or not ms.isdigit() or not seq.isdigit():
        return None
    return int(ms), int(seq)


def format_id(value: MessageId) -> str:
    return f"{value[0]}-{value[1]}"


# -- frames -----------------------------------------------------------------------------


def tail(data: Any, user: str | None = None) -> bytes:
    """What follows ``ts`` in a message frame: ``"user":...,"data":...}``.

    The broker's history stores this part: the id and time are known only once the
    message is appended, and :func:`frame` puts them in front.
    """
    if user is None:
        return b'"data":' + orjson.dumps(data) + b"}"
    return b'"user":' + orjson.dumps(user) + b',"data":' + orjson.dumps(data) + b"}"


def head(topic: str) -> bytes:
    """``{"type":"message","topic":"...","id":"`` (the id follows)."""
    return b'{"type":"message","topic":' + orjson.dumps(topic) + b',"id":"'


def frame(topic: str, message_id: str, rest: bytes) -> bytes:
    """A whole message frame: ``{"type":"message","topic","id","ts",["user"],"data"}``."""
    ms = message_id.partition("-")[0]
    return head(topic) + message_id.encode() + b'","ts":' + ms.encode() + b"," + rest


def frame_id(encoded: bytes) -> tuple[str, MessageId] | None:
    """(topic, id) of a message frame built by :func:`frame`; None for any other frame."""
    if not encoded.startswith(b'{"type":"message","topic":"'):
        return None
    start = encoded.find(b'","id":"')
    if start < 0:
        return None
    end = encoded.find(b'"', start + 8)
    topic = orjson.loads(encoded[26 : start + 1])
    parsed = parse_id(encoded[start + 8 : end].decode())
    return None if parsed is None else (topic, parsed)
