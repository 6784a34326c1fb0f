"""NotificationConsumer: JWT from ``?token=``, per-user group plus the ``all`` group."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import jwt
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings


def user_group(user: str) -> str:
    return f"user.{user}"


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            claims = jwt.decode(query.get("token", [""])[0], settings.JWT_SECRET, ["HS256"])
            user = str(claims["sub"])
        except (jwt.PyJWTError, KeyError):
            await self.close(code=4001)
            return
        self.user = user
        for group in (user_group(user), "all"):
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()
        await self.send_json({"type": "welcome", "user": user, "connection": self.channel_name})

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def notify(self, event: dict[str, Any]) -> None:
        """Group message handler: one JSON encode per connection, as Channels apps do."""
        await self.send_json({"type": "notification", "notification": event["notification"]})
