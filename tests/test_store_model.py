"""Random sequences of inbox operations agree with a plain in-memory model.

After every step, each user's full list (walked page by page), archive and unread count
must be exactly what the model says, for notifications to users, to roles and to
everyone, with each user's preferences (types and categories switched off, critical ones
shown anyway), items marked unread again, archived and snoozed, and items the backend
retracted.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tidings import ids
from tidings.models import Audience, InboxFilter, NewNotification, Principal
from tidings.preferences import Preferences
from tidings.store import PendingCreate, SqlStore
from tidings.store.migrate import upgrade

USERS = {
    "alice": Principal("alice", frozenset({"admin"})),
    "bob": Principal("bob", frozenset({"admin", "staff"})),
    "carol": Principal("carol"),
}
ROLES = ["admin", "staff", "nobody"]
TYPES = ["chat", "post"]
CATEGORIES = [None, "news", "ops"]
START_MS = 1_800_000_000_000


@dataclass
class ModelItem:
    id: int
    users: frozenset[str]
    roles: frozenset[str]
    everyone: bool
    expires_ms: int | None
    type: str = "chat"
    category: str | None = None
    critical: bool = False

    def addressed_to(self, who: Principal) -> bool:
        return self.everyone or who.user in self.users or bool(self.roles & who.roles)


@dataclass
class ModelUser:
    read: set[int] = field(default_factory=set)
    hidden: set[int] = field(default_factory=set)
    read_through: int = 0
    unread_again: set[int] = field(default_factory=set)
    archived: set[int] = field(default_factory=set)
    snoozed: dict[int, int] = field(default_factory=dict)
    """id -> until (ms)."""
    types: dict[str, bool] = field(default_factory=dict)
    categories: dict[str, bool] = field(default_factory=dict)

    def mutes(self, item: ModelItem) -> bool:
        if item.critical:
            return False
        if self.types.get(item.type) is False:
            return True
        return item.category is not None and self.categories.get(item.category) is False


class InboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.items: list[ModelItem] = []
        self.users = {name: ModelUser() for name in USERS}
        self.now = START_MS

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coroutine)

    @initialize()
    def open_store(self) -> None:
        self.directory = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{self.directory.name}/model.db"
        self.store = SqlStore(url, max_age_ms=30 * 86_400_000, max_items=10_000, sole_writer=True)
        self.run(upgrade(self.store.writer))

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.run(self.store.close())
            self.directory.cleanup()
        self.loop.close()

    # -- the model -----------------------------------------------------------------

    def reachable(self, name: str) -> list[ModelItem]:
        """What the user can act on: not deleted, muted, expired or retracted."""
        who, state = USERS[name], self.users[name]
        return sorted(
            (
                item
                for item in self.items
                if item.addressed_to(who)
                and item.id not in state.hidden
                and not state.mutes(item)
                and (item.expires_ms is None or item.expires_ms > self.now)
            ),
            key=lambda item: item.id,
            reverse=True,
        )

    def sleeping(self, name: str, item: ModelItem) -> bool:
        return self.users[name].snoozed.get(item.id, 0) > self.now

    def visible(self, name: str) -> list[ModelItem]:
        archived = self.users[name].archived
        return [
            item
            for item in self.reachable(name)
            if item.id not in archived and not self.sleeping(name, item)
        ]

    def archive_of(self, name: str) -> list[ModelItem]:
        archived = self.users[name].archived
        return [
            item
            for item in self.reachable(name)
            if item.id in archived and not self.sleeping(name, item)
        ]

    def is_unread(self, name: str, item: ModelItem) -> bool:
        state = self.users[name]
        above = item.id > state.read_through or item.id in state.unread_again
        return above and item.id not in state.read

    def unread(self, name: str) -> list[ModelItem]:
        return [item for item in self.visible(name) if self.is_unread(name, item)]

    # -- rules -----------------------------------------------------------------------

    @rule(
        users=st.frozensets(st.sampled_from(sorted(USERS)), max_size=2),
        roles=st.frozensets(st.sampled_from(ROLES), max_size=2),
        everyone=st.booleans(),
        ttl_ms=st.none() | st.integers(min_value=1, max_value=5_000),
        kind=st.sampled_from(TYPES),
        category=st.sampled_from(CATEGORIES),
        critical=st.booleans(),
    )
    def create(
        self,
        users: frozenset[str],
        roles: frozenset[str],
        everyone: bool,
        ttl_ms: int | None,
        kind: str,
        category: str | None,
        critical: bool,
    ) -> None:
        if not (users or roles or everyone):
            everyone = True
        if everyone:
            users, roles = frozenset(), frozenset()
        expires_ms = self.now + ttl_ms if ttl_ms is not None else None
        expires_at = (
            datetime.fromtimestamp(expires_ms / 1000, tz=UTC) if expires_ms is not None else None
        )
        audience = Audience(users=tuple(sorted(users)), roles=tuple(sorted(roles)), all=everyone)
        new = NewNotification(
            audience, kind, "info", "x", expires_at=expires_at, category=category, critical=critical
        )
        [outcome] = self.run(self.store.insert([PendingCreate(new)], now_ms=self.now)).outcomes
        value = ids.decode(outcome.notification.id)
        self.items.append(
            ModelItem(value, users, roles, everyone, expires_ms, kind, category, critical)
        )

    @rule(
        name=st.sampled_from(sorted(USERS)),
        switch=st.sampled_from([("type", t) for t in TYPES] + [("category", "news")]),
        enabled=st.booleans(),
    )
    def set_preference(self, name: str, switch: tuple[str, str], enabled: bool) -> None:
        state = self.users[name]
        kind, value = switch
        (state.types if kind == "type" else state.categories)[value] = enabled
        preferences = Preferences(dict(state.types), dict(state.categories))
        self.run(self.store.set_preferences(name, preferences, now_ms=self.now))

    @rule(name=st.sampled_from(sorted(USERS)), pick=st.integers(min_value=0, max_value=50))
    def mark_read(self, name: str, pick: int) -> None:
        if not self.items:
            return
        target = self.items[pick % len(self.items)].id
        changed = self.run(self.store.mark_read(USERS[name], [target], now_ms=self.now))
        unread = [i.id for i in self.reachable(name) if self.is_unread(name, i)]
        expected = [target] if target in unread else []
        assert changed == expected
        self.users[name].read.update(changed)
        self.users[name].unread_again.difference_update(changed)

    @rule(name=st.sampled_from(sorted(USERS)))
    def mark_all_read(self, name: str) -> None:
        self.run(self.store.mark_all_read(USERS[name], now_ms=self.now))
        addressed = [i.id for i in self.items if i.addressed_to(USERS[name])]
        if addressed:
            state = self.users[name]
            newest = max(addressed)
            state.read_through = max(state.read_through, newest)
            for value in list(state.unread_again):  # read now, unless still snoozed
                if value <= newest and state.snoozed.get(value, 0) <= self.now:
                    state.unread_again.discard(value)
                    state.read.add(value)

    @rule(name=st.sampled_from(sorted(USERS)), pick=st.integers(min_value=0, max_value=50))
    def delete(self, name: str, pick: int) -> None:
        if not self.items:
            return
        target = self.items[pick % len(self.items)].id
        hidden = self.run(self.store.hide(USERS[name], target, now_ms=self.now))
        assert hidden == any(i.id == target for i in self.reachable(name))
        if hidden:
            self.users[name].hidden.add(target)

    def _own(self, name: str, pick: int, values: dict[str, int | None]) -> ModelItem | None:
        """Set a receipt through the store; the item if the user could reach it."""
        if not self.items:
            return None
        target = self.items[pick % len(self.items)]
        done = self.run(self.store.set_receipt(USERS[name], target.id, values, now_ms=self.now))
        reachable = any(i.id == target.id for i in self.reachable(name))
        assert done == reachable
        return target if done else None

    @rule(name=st.sampled_from(sorted(USERS)), pick=st.integers(min_value=0, max_value=50))
    def mark_unread(self, name: str, pick: int) -> None:
        target = self._own(name, pick, {"read_at": None, "unread_at": self.now})
        if target is not None:
            self.users[name].read.discard(target.id)
            self.users[name].unread_again.add(target.id)

    @rule(
        name=st.sampled_from(sorted(USERS)),
        pick=st.integers(min_value=0, max_value=50),
        archived=st.booleans(),
    )
    def archive(self, name: str, pick: int, archived: bool) -> None:
        target = self._own(name, pick, {"archived_at": self.now if archived else None})
        if target is not None:
            (self.users[name].archived.add if archived else self.users[name].archived.discard)(
                target.id
            )

    @rule(name=st.sampled_from(sorted(USERS)))
    def archive_read(self, name: str) -> None:
        done = self.run(self.store.archive_read(USERS[name], now_ms=self.now))
        expected = [i.id for i in self.visible(name) if not self.is_unread(name, i)]
        assert done == expected
        self.users[name].archived.update(done)

    @rule(
        name=st.sampled_from(sorted(USERS)),
        pick=st.integers(min_value=0, max_value=50),
        ms=st.integers(min_value=1, max_value=6_000),
    )
    def snooze(self, name: str, pick: int, ms: int) -> None:
        until = self.now + ms
        values = {"snoozed_until": until, "read_at": None, "unread_at": self.now}
        target = self._own(name, pick, values)
        if target is not None:
            state = self.users[name]
            state.snoozed[target.id] = until
            state.read.discard(target.id)
            state.unread_again.add(target.id)

    @rule(pick=st.integers(min_value=0, max_value=50))
    def retract(self, pick: int) -> None:
        if not self.items:
            return
        target = self.items.pop(pick % len(self.items))
        stored = self.run(self.store.retract(target.id, now_ms=self.now))
        assert stored is not None and stored.outcomes[0].change == "retracted"
        assert self.run(self.store.retract(target.id, now_ms=self.now)) is None

    @rule(ms=st.integers(min_value=1, max_value=3_000))
    def time_passes(self, ms: int) -> None:
        self.now += ms

    @rule()
    def sweep(self) -> None:
        self.run(self.store.sweep(now_ms=self.now))
        self.items = [i for i in self.items if i.expires_ms is None or i.expires_ms > self.now]

    # -- what must always hold -------------------------------------------------------

    @invariant()
    def every_inbox_matches_the_model(self) -> None:
        if not hasattr(self, "store"):
            return
        for name, who in USERS.items():
            listed, before = [], None
            while True:
                page = self.run(self.store.page(who, now_ms=self.now, limit=4, before=before))
                listed += [ids.decode(item.id) for item in page.items]
                assert page.unread_count == len(self.unread(name)), name
                if page.next_before is None:
                    break
                before = ids.decode(page.next_before)
            assert listed == [item.id for item in self.visible(name)], name
            # The connect-time count (statements compiled once per shape) agrees.
            _, unread = self.run(self.store.welcome(who, now_ms=self.now))
            assert unread == len(self.unread(name)), name
            unread_page = self.run(
                self.store.page(who, now_ms=self.now, limit=100, unread_only=True)
            )
            assert [ids.decode(i.id) for i in unread_page.items] == [
                item.id for item in self.unread(name)
            ], name
            archive = self.run(
                self.store.page(who, now_ms=self.now, limit=100, only=InboxFilter(archived=True))
            )
            assert [ids.decode(i.id) for i in archive.items] == [
                item.id for item in self.archive_of(name)
            ], name


InboxMachine.TestCase.settings = settings(
    # The suite runs a bounded slice; scripts/soak runs TIDINGS_MODEL_EXAMPLES=400.
    max_examples=int(os.environ.get("TIDINGS_MODEL_EXAMPLES", "15")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestInboxAgainstModel = InboxMachine.TestCase
