from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo users (password 'demo'): coach (staff, group coaches), alice, bob."

    def handle(self, *args, **options):
        coaches, _ = Group.objects.get_or_create(name="coaches")
        for name, staff in (("coach", True), ("alice", False), ("bob", False)):
            user, created = User.objects.get_or_create(username=name, defaults={"is_staff": staff})
            if created:
                user.set_password("demo")
                user.save()
            if staff:
                user.groups.add(coaches)
        self.stdout.write("demo users: coach (staff), alice, bob; password: demo")
