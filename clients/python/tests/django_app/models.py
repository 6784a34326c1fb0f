from django.conf import settings
from django.db import models


class Task(models.Model):
    name = models.CharField(max_length=100)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)

    class Meta:
        app_label = "django_app"
