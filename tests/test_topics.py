"""Topic rules without I/O: globs and grants, message ids and frames, the topic budget."""

from __future__ import annotations

import orjson
import pytest

from tidings import topics
from tidings.broker.history import MemoryHistory
from tidings.coalesce import Budget, TopicState


@pytest.mark.parametrize(
    ("claim", "name", "granted"),
    [
        (["logs.*"], "logs.api", True),
        (["logs.*"], "logs.*", True),
        (["logs.*"], "logs.api.*", True),
        (["logs.*"], "logs.[ab]*", True),
        (["logs.*"], "*", False),
        (["logs.*"], "l?gs.api", False),
        (["logs.?"], "logs.*", False),  # logs.* matches logs.api, which logs.? does not
        (["logs.?"], "logs.?", True),
        (["*"], "anything.*", True),
        (["room.1"], "room.*", False),
        ([], "logs.*", False),
    ],
)
def test_a_glob_is_granted_only_when_the_claim_covers_everything_it_matches(
    claim: list[str], name: str, granted: bool
) -> None:
    assert topics.grants(claim, name) is granted


def test_message_ids_are_ms_and_sequence() -> None:
    assert topics.parse_id("1700000000000-3") == (1700000000000, 3)
    assert topics.format_id((17, 0)) == "17-0"
    for bad in ("17", "a-1", "1-b", "-1", "1-", 17, None, "1-2-3", "9" * 41):
        assert topics.parse_id(bad) is None


def test_a_message_frame_carries_topic_id_ts_user_and_data() -> None:
    frame = topics.frame("room.1", "1700000000123-4", topics.tail({"t": "hi"}, "bob"))
    assert orjson.loads(frame) == {
        "type": "message",
        "topic": "room.1",
        "id": "1700000000123-4",
        "ts": 1700000000123,
        "user": "bob",
        "data": {"t": "hi"},
    }
    assert topics.frame_id(frame) == ("room.1", (1700000000123, 4))
    assert topics.frame_id(b'{"type":"ping"}') is None


def test_memory_history_keeps_the_last_n_in_id_order() -> None:
    now = [1000.0]
    history = MemoryHistory(3, clock=lambda: now[0])
    frames = [history.append("t", topics.tail(i)) for i in range(5)]
    ids = [topics.frame_id(f)[1] for f in frames]  # type: ignore[index]
    assert ids == [(1000000, 0), (1000000, 1), (1000000, 2), (1000000, 3), (1000000, 4)]
    found = history.read("t", count=2, since=None)
    assert found.frames == frames[-2:]
    assert (found.oldest, found.newest) == (ids[2], ids[4])
    after = history.read("t", count=0, since=ids[2])
    assert after.frames == frames[3:] and after.since_found
    assert history.read("other", count=5, since=None).frames == []


def test_the_budget_sends_up_to_its_rate_then_batches_the_newest() -> None:
    budget = Budget(rate=20, batch=2, window=0.1, clock=lambda: 0.0)
    state = TopicState()
    tick = budget.tick()
    sent = [budget.admit(state, [f'{{"n":{i}}}'.encode()], tick) for i in range(6)]
    assert sent == [True, True, False, False, False, False]
    batch = orjson.loads(budget.take(state) or b"")
    assert batch == {"type": "batch", "messages": [{"n": 4}, {"n": 5}], "skipped": 2}
    assert budget.take(state) is None
    assert budget.admit(state, [b"{}"], tick + 1)  # a new window, a new budget
    assert budget.admit(state, [b"{}"] * 3, tick + 1)
    assert not budget.admit(state, [b"{}"], tick + 1)  # that batch spent the window's budget


def test_frames_held_during_a_replay_lose_what_the_replay_sent() -> None:
    from tidings.coalesce import batch_frame
    from tidings.rooms import _revised

    state = TopicState()
    state.marks["room"] = (100, 1)
    old = topics.frame("room", "100-1", topics.tail(1))
    new = topics.frame("room", "100-2", topics.tail(2))
    other = topics.frame("elsewhere", "50-0", topics.tail(3))
    assert _revised(state, {}, old) is None
    assert _revised(state, {}, new) == new
    revised = orjson.loads(_revised(state, {}, batch_frame([old, new, other])) or b"")
    assert [m["data"] for m in revised["messages"]] == [2, 3]
    assert _revised(state, {}, batch_frame([old])) is None
    join = b'{"type":"join","topic":"room","user":"ann"}'
    assert _revised(state, {"room": {"ann"}}, join) is None  # the snapshot has her
    assert _revised(state, {"room": set()}, join) == join
