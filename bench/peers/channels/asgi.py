"""ASGI entry point: HTTP to Django, ``/ws`` to the NotificationConsumer."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.channels.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import path

django_app = get_asgi_application()

from bench.peers.channels.consumers import NotificationConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": URLRouter([path("ws", NotificationConsumer.as_asgi())]),
    }
)
