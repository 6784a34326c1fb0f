"""The realtime protocol, values in and values out: no sockets, no event loop."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings import frames
from tidings.errors import Forbidden, ValidationFailed
from tidings.protocol import (
    MAX_IDS,
    TOPIC_FORBIDDEN,
    Budgets,
    Heartbeat,
    ListInbox,
    MarkAllRead,
    MarkRead,
    Ping,
    Pong,
    ProtocolError,
    Publish,
    Subscribe,
    TokenBucket,
    Unsubscribe,
    ack,
    bearer_token,
    check_subscription,
    frame_type,
    origin_allowed,
    parse,
    parse_filter,
    pong,
    resync,
    sse_event,
    sse_retry,
    topic_allowed,
)

ID_A = "0000018c1a2b3c00"
ID_B = "0000018c1a2b3c01"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def error_of(text: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse(text)
    return caught.value


# -- parsing client frames --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type": "ping"}', Ping()),
        ('{"type": "ping", "ref": 7}', Ping(ref=7)),
        ('{"type": "pong"}', Pong()),
        ('{"type": "mark_all_read", "ref": "a"}', MarkAllRead(ref="a")),
        (f'{{"type": "mark_read", "ids": ["{ID_A}", "{ID_B}"]}}', MarkRead((ID_A, ID_B))),
        ('{"type": "list"}', ListInbox(limit=20, before=None)),
        (f'{{"type": "list", "limit": 5, "before": "{ID_B}", "ref": 1}}', ListInbox(5, ID_B, 1)),
        ('{"type": "subscribe", "topic": "logs"}', Subscribe(("logs",))),
        ('{"type": "unsubscribe", "topic": "logs", "ref": 2}', Unsubscribe(("logs",), 2)),
        ('{"type": "subscribe", "topic": "logs.*"}', Subscribe(("logs.*",))),
        (
            '{"type": "subscribe", "topics": ["a", "logs.*", "a"], "history": 5, "ref": 1}',
            Subscribe(("a", "logs.*"), None, 1, history=5),
        ),
        (
            '{"type": "subscribe", "topic": "room", "since": "17-3", "presence": true}',
            Subscribe(("room",), since="17-3", presence=True),
        ),
        ('{"type": "publish", "topic": "room", "data": {"t": 1}}', Publish("room", {"t": 1})),
    ],
)
def test_valid_frames_parse_into_requests(text: str, expected: object) -> None:
    assert parse(text) == expected


def test_bytes_are_accepted_like_text() -> None:
    assert parse(b'{"type": "ping"}') == Ping()


def test_mark_read_drops_repeated_ids_keeping_order() -> None:
    assert parse(f'{{"type": "mark_read", "ids": ["{ID_B}", "{ID_A}", "{ID_B}"]}}') == MarkRead(
        (ID_B, ID_A)
    )


def test_subscribe_carries_a_filter() -> None:
    request = parse('{"type": "subscribe", "topic": "logs", "filter": {"level": ["error"]}}')
    assert isinstance(request, Subscribe)
    assert request.filter == parse_filter({"level": "error"})


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('{"ref": 1}', "unknown_type"),
        ('{"type": "explode"}', "unknown_type"),
        ('{"type": 3}', "unknown_type"),
        ('{"type": "mark_read"}', "invalid"),
        ('{"type": "mark_read", "ids": []}', "invalid"),
        ('{"type": "mark_read", "ids": "abc"}', "invalid"),
        ('{"type": "mark_read", "ids": [12]}', "invalid"),
        ('{"type": "mark_read", "ids": ["not-an-id"]}', "invalid"),
        ('{"type": "list", "limit": 0}', "invalid"),
        ('{"type": "list", "limit": 101}', "invalid"),
        ('{"type": "list", "limit": "5"}', "invalid"),
        ('{"type": "list", "limit": true}', "invalid"),
        ('{"type": "list", "before": 5}', "invalid"),
        ('{"type": "subscribe"}', "invalid"),
        ('{"type": "subscribe", "topic": ""}', "invalid"),
        ('{"type": "subscribe", "topic": "a b"}', "invalid"),
        ('{"type": "subscribe", "topic": "x", "filter": []}', "invalid"),
        ('{"type": "subscribe", "topic": "x", "filter": {"a": {"b": 1}}}', "invalid"),
        ('{"type": "subscribe", "topic": "x", "filter": {"a": []}}', "invalid"),
        ('{"type": "unsubscribe", "topic": 4}', "invalid"),
        ('{"type": "subscribe", "topic": "logs\\n"}', "invalid"),
        ('{"type": "subscribe", "topic": "logs.[ab"}', "bad_pattern"),
        ('{"type": "subscribe", "topic": "logs.[]"}', "bad_pattern"),
        ('{"type": "subscribe", "topic": "logs.[[a]]"}', "bad_pattern"),
        ('{"type": "subscribe", "topics": []}', "invalid"),
        ('{"type": "subscribe", "topics": "logs"}', "invalid"),
        ('{"type": "subscribe", "topic": "x", "history": -1}', "invalid"),
        ('{"type": "subscribe", "topic": "x", "history": 1001}', "invalid"),
        ('{"type": "subscribe", "topic": "x", "history": "5"}', "invalid"),
        ('{"type": "subscribe", "topic": "x", "since": "yesterday"}', "invalid_since"),
        ('{"type": "subscribe", "topic": "x", "since": 17}', "invalid_since"),
        ('{"type": "subscribe", "topic": "x", "presence": 1}', "invalid"),
        ('{"type": "subscribe", "topic": "x.*", "presence": true}', "invalid"),
        ('{"type": "publish", "topic": "x"}', "invalid"),
        ('{"type": "publish", "topic": "x.*", "data": 1}', "bad_pattern"),
        ('{"type": "ping", "ref": {"nested": true}}', "bad_ref"),
    ],
)
def test_malformed_frames_raise_protocol_errors(text: str, code: str) -> None:
    assert error_of(text).code == code


def test_errors_carry_the_request_ref() -> None:
    error = error_of('{"type": "list", "limit": -1, "ref": "r1"}')
    assert error.ref == "r1"
    assert orjson.loads(error.frame()) == {
        "type": "error",
        "code": "invalid",
        "message": error.message,
        "ref": "r1",
    }


def test_too_many_ids_is_its_own_error() -> None:
    ids = [f"{n:016x}" for n in range(MAX_IDS + 1)]
    text = orjson.dumps({"type": "mark_read", "ids": ids, "ref": 3})
    error = error_of(text)
    assert (error.code, error.ref) == ("too_many_ids", 3)


@given(st.text(max_size=200))
def test_arbitrary_text_never_escapes_as_anything_but_a_protocol_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse(text)


@given(
    st.dictionaries(
        st.sampled_from(["type", "ref", "ids", "limit", "before", "topic", "filter"]),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
            max_leaves=5,
        ),
    )
)
def test_arbitrary_objects_never_escape_as_anything_but_a_protocol_error(frame: dict) -> None:
    with contextlib.suppress(ProtocolError):
        parse(orjson.dumps(frame))


# -- server frames ------------------------------------------------------------------------


def test_frame_type_reads_the_leading_type_field() -> None:
    assert frame_type(frames.unread(3)) == "unread"
    assert frame_type(frames.PING) == "ping"
    assert frame_type(b'{"other": 1, "type": "late"}') == "late"


def test_replies_carry_the_ref() -> None:
    assert orjson.loads(ack("r1", ids=[ID_A])) == {"type": "ack", "ref": "r1", "ids": [ID_A]}
    assert orjson.loads(pong(7)) == {"type": "pong", "ref": 7}
    assert pong() == frames.PONG
    assert orjson.loads(resync("too_many_missed")) == {
        "type": "resync",
        "reason": "too_many_missed",
    }


def test_sse_retry_rides_on_the_next_event() -> None:
    assert sse_retry(3000) + sse_event(frames.PING) == (
        b"retry: 3000\nevent: ping\ndata: " + frames.PING + b"\n\n"
    )


def test_sse_event_names_the_frame_and_carries_the_id() -> None:
    frame = frames.unread(2)
    assert sse_event(frame) == b"event: unread\ndata: " + frame + b"\n\n"
    assert sse_event(frame, event_id=ID_A) == (
        b"id: " + ID_A.encode() + b"\nevent: unread\ndata: " + frame + b"\n\n"
    )


# -- topics ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "patterns", "allowed"),
    [
        ("logs", ["logs"], True),
        ("project.42", ["project.*"], True),
        ("project.42", ["project.4?"], True),
        ("project.42", ["logs", "system"], False),
        ("anything", ["*"], True),
        ("logs", [], False),
        ("LOGS", ["logs"], False),
    ],
)
def test_topic_permission_uses_glob_patterns(topic: str, patterns: list, allowed: bool) -> None:
    assert topic_allowed(topic, patterns) is allowed


def test_one_rule_refuses_a_subscription_on_every_transport() -> None:
    assert check_subscription("logs.api", ["logs.*"]) == "logs.api"
    with pytest.raises(Forbidden) as forbidden:
        check_subscription("billing", ["logs.*"])
    assert (forbidden.value.status, forbidden.value.code) == (403, TOPIC_FORBIDDEN)
    assert check_subscription("logs.*", ["logs.*"]) == "logs.*"
    with pytest.raises(Forbidden):
        check_subscription("*", ["logs.*"])  # a glob wider than the claim
    with pytest.raises(ValidationFailed) as malformed:
        check_subscription("logs.[a", ["*"])
    assert (malformed.value.status, malformed.value.code) == (422, "bad_pattern")
    for name in ("", "a b", "é", "a/b", "x" * 201, None):
        with pytest.raises(ValidationFailed) as invalid:
            check_subscription(name, ["*"])
        assert invalid.value.code == "invalid"


def test_filter_matches_every_field_against_a_value_or_list_of_values() -> None:
    flt = parse_filter({"level": ["error", "warning"], "environment": "prod"})
    assert flt.matches({"level": "error", "environment": "prod", "source": "api"})
    assert flt.matches({"level": "warning", "environment": "prod"})
    assert not flt.matches({"level": "info", "environment": "prod"})
    assert not flt.matches({"level": "error", "environment": "staging"})
    assert not flt.matches({"level": "error"})
    assert not flt.matches("error")
    assert not flt.matches({"level": ["error"], "environment": "prod"})


def test_filter_values_may_be_numbers_and_booleans() -> None:
    flt = parse_filter({"code": [500, 503], "retry": False})
    assert flt.matches({"code": 503, "retry": False})
    assert not flt.matches({"code": 404, "retry": False})


# -- rate limiting --------------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5
    assert [bucket.allow(), bucket.allow()] == [True, False]
    clock.now += 100
    assert sum(bucket.allow() for _ in range(10)) == 3


def test_token_bucket_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


def test_an_empty_bucket_says_how_long_until_the_next_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=1, clock=clock)
    assert bucket.retry_after() == 0
    assert bucket.allow()
    assert bucket.retry_after() == pytest.approx(0.25)
    clock.now += 0.1
    assert bucket.retry_after() == pytest.approx(0.15)


def test_budgets_keep_one_bucket_per_key() -> None:
    clock = FakeClock()
    budgets = Budgets(rate=1, burst=2, clock=clock)
    assert [budgets.take("alice") for _ in range(3)] == [0, 0, pytest.approx(1.0)]
    assert budgets.take("bob") == 0  # alice's reads do not spend bob's
    clock.now += 1
    assert budgets.take("alice") == 0


def test_budgets_forget_idle_keys_so_memory_follows_the_active_ones() -> None:
    clock = FakeClock()
    budgets = Budgets(rate=10, burst=1, clock=clock)
    for n in range(1024):
        budgets.take(f"user{n}")
    clock.now += 1  # every bucket has refilled: forgetting them changes nothing
    budgets.take("busy")
    assert len(budgets) == 1
    assert budgets.take("user1") == 0


# -- heartbeat ------------------------------------------------------------------------------


def test_heartbeat_pings_every_interval() -> None:
    clock = FakeClock()
    beat = Heartbeat(interval=30, clock=clock)
    assert not beat.ping_due()
    assert beat.next_deadline() == 30
    clock.now += 30
    assert beat.ping_due()
    beat.pinged()
    assert not beat.ping_due()


def test_a_client_silent_for_two_intervals_is_dead() -> None:
    clock = FakeClock()
    beat = Heartbeat(interval=30, clock=clock)
    clock.now += 59
    assert not beat.dead()
    beat.heard()
    clock.now += 59
    assert not beat.dead()
    clock.now += 1
    assert beat.dead()


def test_next_deadline_is_the_sooner_of_ping_and_death() -> None:
    clock = FakeClock()
    beat = Heartbeat(interval=10, clock=clock)
    clock.now += 10
    beat.pinged()
    assert beat.next_deadline() == 10  # dead at 20, next ping at 20
    clock.now += 5
    beat.heard()
    assert beat.next_deadline() == 5


# -- origins and tokens ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "example.com", [], True),
        ("https://example.com", "example.com", [], True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", [], True),
        ("https://evil.com", "example.com", [], False),
        ("https://app.com", "api.app.com", ["https://app.com"], True),
        ("https://app.com/", "api.app.com", ["https://app.com"], True),
        ("https://evil.com", "api.app.com", ["https://app.com"], False),
        ("https://anything.net", "api.app.com", ["*"], True),
    ],
)
def test_origin_check(origin: str | None, host: str, allowed: list, ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_token_comes_from_the_query_or_a_bearer_header() -> None:
    assert bearer_token(None, "q") == "q"
    assert bearer_token("Bearer h", None) == "h"
    assert bearer_token("bearer  h ", None) == "h"
    assert bearer_token("Basic xyz", None) is None
    assert bearer_token(None, None) is None


# -- inbox actions ---------------------------------------------------------------------------


def test_action_requests_and_list_filters_parse() -> None:
    from tidings.models import InboxFilter
    from tidings.protocol import Act

    frame = f'{{"type": "action", "id": "{ID_A}", "action": "approve", "ref": 4}}'
    assert parse(frame) == Act(ID_A, "approve", 4)
    listed = parse('{"type": "list", "archived": true, "types": ["a", "b"], "levels": "error"}')
    assert isinstance(listed, ListInbox)
    assert listed.only == InboxFilter(True, ("a", "b"), (), ("error",))


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "action", "id": "nope", "action": "approve"}',
        f'{{"type": "action", "id": "{ID_A}"}}',
        f'{{"type": "action", "id": "{ID_A}", "action": "a b"}}',
        '{"type": "list", "archived": "yes"}',
        '{"type": "list", "levels": ["loud"]}',
        '{"type": "list", "types": [1]}',
    ],
)
def test_bad_actions_and_filters_are_invalid_with_their_ref(text: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(text)
    assert caught.value.code == "invalid"
