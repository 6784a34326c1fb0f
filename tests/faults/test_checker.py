"""The checker reads as the delivery promise: once, in order, nothing lost, to the right user."""

from __future__ import annotations

from faults.checker import Stream, check, check_inbox, check_stream, owed_to

A, B, C, D = (f"{n:016x}" for n in (10, 20, 30, 40))
START = f"{5:016x}"
ACKED = {
    A: frozenset({"ann"}),
    B: frozenset({"ann", "bob"}),
    C: frozenset({"bob"}),
    D: frozenset({"ann"}),
}


def stream(*received: str, user: str = "ann", after: str = START) -> Stream:
    return Stream(name="s", user=user, after=after, received=list(received))


def test_a_complete_stream_in_order_is_clean() -> None:
    report = check_stream(ACKED, stream(A, B, D))
    assert (report.owed, report.received) == (3, 3)
    assert not (report.missing or report.duplicated or report.out_of_order or report.misdelivered)


def test_what_is_owed_starts_after_the_streams_starting_point() -> None:
    assert owed_to(ACKED, "ann", after=A) == [B, D]
    assert check_stream(ACKED, stream(B, D, after=A)).missing == ()


def test_a_missing_acknowledged_notification_is_lost() -> None:
    assert check_stream(ACKED, stream(A, D)).missing == (B,)


def test_a_replay_of_something_already_seen_is_a_duplicate_not_disorder() -> None:
    report = check_stream(ACKED, stream(A, B, B, D, A))
    assert report.duplicated == (B, A)
    assert report.out_of_order == ()


def test_a_smaller_id_after_a_larger_one_is_out_of_order() -> None:
    report = check_stream(ACKED, stream(A, D, B))
    assert report.out_of_order == (B,)
    assert report.missing == ()


def test_a_notification_for_someone_else_is_misdelivered() -> None:
    assert check_stream(ACKED, stream(A, B, C, D)).misdelivered == (C,)


def test_committed_but_unacknowledged_ones_are_counted_not_faulted() -> None:
    unacked = f"{25:016x}"
    report = check_stream(ACKED, stream(A, B, unacked, D))
    assert report.unacknowledged == 1
    assert not (report.missing or report.out_of_order or report.misdelivered)


def test_an_inbox_must_list_every_acknowledged_id_once_newest_first() -> None:
    assert check_inbox(ACKED, "ann", [D, B, A]).missing == ()
    broken = check_inbox(ACKED, "ann", [D, A, A])
    assert broken.missing == (B,)
    assert broken.duplicated == (A,)
    assert broken.unsorted == 1
    assert check_inbox(ACKED, "ann", [A, B, D]).unsorted == 2


def test_the_report_totals_every_stream_and_inbox() -> None:
    report = check(
        ACKED,
        [stream(A, D, B, B), stream(C, user="bob")],
        {"ann": [D, B, A], "bob": [C]},
    )
    assert report.figures() == {
        "acked": 4,
        "deliveries": 5,
        "lost": 1,  # bob's stream never got B
        "dup": 1,
        "disorder": 1,
        "misdelivered": 0,
        "store_missing": 1,  # bob's inbox lacks B
    }
    assert not report.ok
    assert "missing" in report.describe()


def test_a_clean_run_is_ok_and_says_nothing() -> None:
    report = check(ACKED, [stream(A, B, D), stream(B, C, user="bob")], {"ann": [D, B, A]})
    assert report.ok
    assert report.describe() == ""
