"""Django app config; the label avoids clashing with the ``channels`` package."""

from django.apps import AppConfig


class BenchChannelsConfig(AppConfig):
    name = "bench.peers.channels"
    label = "bench_channels"
    default_auto_field = "django.db.models.BigAutoField"
