"""Topics as rooms over HTTP: client publishing (for SSE clients) and presence reads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from tidings.topics import TOPIC_PATTERN
from tidings.web.api import BACKEND, END_USER, ApiKey, AppDep, Me
from tidings.web.errors import documented
from tidings.web.responses import PublishedOut
from tidings.web.schemas import TopicMessageIn

router = APIRouter(prefix="/api/v1")

Topic = Annotated[str, Path(pattern=TOPIC_PATTERN, description="a topic name")]


class UserPresenceOut(BaseModel):
    online: bool
    connections: int


class RoomPresenceOut(BaseModel):
    users: list[str]


@router.post(
    "/me/topics/{topic}/messages",
    status_code=202,
    tags=["topics"],
    response_model=PublishedOut,
    responses=documented(400, 401, 403, 413, 422, 429, 503),
    openapi_extra=END_USER,
)
async def publish_as_user(
    body: TopicMessageIn, app: AppDep, me: Me, topic: Topic
) -> dict[str, Any]:
    """Publish to a topic as the end user, when the JWT claim ``publish`` allows it.

    The same message as the WebSocket ``publish`` (with ``user`` set), for clients on
    Server-Sent Events; same limits (``TIDINGS_PUBLISH_RATE``, ``TIDINGS_PUBLISH_MAX_BYTES``).
    """
    await app.rooms.publish(me, topic, body.data)
    return {"topic": topic, "published": True}


@router.get(
    "/users/{user}/presence",
    tags=["topics"],
    response_model=UserPresenceOut,
    responses=documented(400, 401, 503),
    openapi_extra=BACKEND,
)
async def user_presence(
    app: AppDep, key: ApiKey, user: Annotated[str, Path(min_length=1, max_length=200)]
) -> dict[str, Any]:
    """Whether the user has a live connection on any process, and how many."""
    return await app.rooms.online(user)


@router.get(
    "/topics/{topic}/presence",
    tags=["topics"],
    response_model=RoomPresenceOut,
    responses=documented(400, 401, 422, 503),
    openapi_extra=BACKEND,
)
async def room_presence(app: AppDep, key: ApiKey, topic: Topic) -> dict[str, Any]:
    """Users in the topic's room (subscribed with ``presence: true``), at most 1,000."""
    return {"users": await app.rooms.users(topic)}
