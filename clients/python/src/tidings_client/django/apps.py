from django.apps import AppConfig


class TidingsClientConfig(AppConfig):  # type: ignore[misc]
    name = "tidings_client.django"
    label = "tidings_client"
    verbose_name = "tidings notifications"
