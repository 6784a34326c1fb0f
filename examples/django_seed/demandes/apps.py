from django.apps import AppConfig


class DemandesConfig(AppConfig):
    name = "demandes"

    def ready(self) -> None:
        from demandes import notifications

        notifications.connect()
