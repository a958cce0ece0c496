"""``python manage.py setup_periodic_tasks``: create or update beat's PeriodicTask rows (idempotent)."""

from django.core.management.base import BaseCommand

from automation.periodic import ensure_periodic_tasks


class Command(BaseCommand):
    help = ("Create or update the platform's django-celery-beat periodic tasks by name (never deletes; "
            "admin-made tasks and an admin's enabled/disabled choice are kept). Run after migrate.")

    def handle(self, *args, **options):
        for name, created in ensure_periodic_tasks():
            self.stdout.write(f"{'created' if created else 'updated'}: {name}")
