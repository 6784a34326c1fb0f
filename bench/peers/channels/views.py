"""HTTP API: store a row, then ``group_send`` to each recipient group."""

from __future__ import annotations

import json

from channels.layers import get_channel_layer
from django.conf import settings
from django.http import HttpRequest, JsonResponse

from bench.peers.channels.consumers import user_group
from bench.peers.channels.models import Notification


def error(status: int, code: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": code}}, status=status)


async def readyz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


async def create_notification(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return error(405, "method_not_allowed")
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or auth[7:] not in settings.API_KEYS:
        return error(401, "unauthorized")
    try:
        req = json.loads(request.body)
        to = req.get("to", {})
    except (ValueError, AttributeError):
        return error(400, "bad_request")
    broadcast = bool(to.get("all"))
    users = [str(u) for u in to.get("users", [])]
    row = await Notification.objects.acreate(
        recipient=",".join(users),
        broadcast=broadcast,
        type=req.get("type", ""),
        title=req.get("title", ""),
        body=req.get("body", ""),
        data=req.get("data", {}),
    )
    public = row.to_public()
    layer = get_channel_layer()
    groups = ["all"] if broadcast else [user_group(u) for u in users]
    for group in groups:
        await layer.group_send(group, {"type": "notify", "notification": public})
    return JsonResponse(public, status=201)
