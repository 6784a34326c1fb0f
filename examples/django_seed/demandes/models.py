"""A demande (a request an entrepreneur files, reviewed by a coach): the seed's objects
whose changes notify people."""

from django.conf import settings
from django.db import models


class Demande(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="demandes_created"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="demandes_assigned",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    TRACKED = ("status", "assignee_id")

    @classmethod
    def from_db(cls, db, field_names, values):  # type: ignore[no-untyped-def]
        instance = super().from_db(db, field_names, values)
        instance.remember()
        return instance

    def remember(self) -> None:
        """What the tracked fields held when loaded or last saved: what changed is told."""
        self.loaded = {name: getattr(self, name) for name in self.TRACKED}

    def changed(self, name: str) -> bool:
        return getattr(self, "loaded", {}).get(name) != getattr(self, name)

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().save(*args, **kwargs)  # post_save (the notifications) still sees the old values
        self.remember()

    def __str__(self) -> str:
        return self.title
