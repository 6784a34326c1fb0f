"""The stored notification row, as the seeds keep it."""

from django.db import models


class Notification(models.Model):
    recipient = models.CharField(max_length=200, blank=True, db_index=True)
    broadcast = models.BooleanField(default=False)
    type = models.CharField(max_length=100)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True)

    def to_public(self) -> dict:
        return {
            "id": f"{self.pk:016x}",
            "type": self.type,
            "level": "info",
            "title": self.title,
            "body": self.body,
            "data": self.data,
            "url": None,
            "actor": None,
            "created_at": self.created_at.isoformat(),
            "read_at": None,
        }
