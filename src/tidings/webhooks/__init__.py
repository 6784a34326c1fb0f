"""Outgoing webhooks: signed events from a durable queue (see :mod:`.dispatcher`)."""

from tidings.webhooks.dispatcher import WebhookConfig, Webhooks
from tidings.webhooks.signing import HEADER, signature, verify

__all__ = ["HEADER", "WebhookConfig", "Webhooks", "signature", "verify"]
