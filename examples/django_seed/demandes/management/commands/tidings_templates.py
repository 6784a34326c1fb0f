from django.core.management.base import BaseCommand
from tidings_client.django import get_client

from demandes.notifications import TEMPLATES, install_templates


class Command(BaseCommand):
    help = "Create or update this project's event templates on the tidings server."

    def handle(self, *args, **options):
        install_templates(get_client())
        self.stdout.write(f"templates: {', '.join(TEMPLATES)}")
