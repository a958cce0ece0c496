"""``python manage.py tick``: all due work once (a crontab line), or ``--loop`` for the embedded mode."""

import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from automation import scheduling


class Command(BaseCommand):
    help = ("Run all due work once: the event sweeper, scheduled and time-based rules, and whatever other "
            "apps registered (automation.scheduling.register_due_work). --loop repeats it every --interval seconds.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep ticking until stopped (embedded mode).")
        parser.add_argument("--interval", type=float, default=30.0, help="Seconds between ticks with --loop.")

    def handle(self, *args, loop=False, interval=30.0, **options):
        if not loop:
            outcome = self._tick(options["verbosity"], quiet=False)
            if not outcome.ok:
                raise CommandError(f"due work failed: {', '.join(outcome.errors)}")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"tick loop: every {interval:g}s, due work: {', '.join(n for n, _ in scheduling.due_work())}")
        while not stop.is_set():
            started = time.monotonic()
            close_old_connections()
            self._tick(options["verbosity"], quiet=True)
            close_old_connections()
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
        self.stdout.write("tick loop stopped")

    def _tick(self, verbosity: int, quiet: bool) -> scheduling.TickResult:
        """Once: every piece's result on stdout. In the loop only with -v 2: ``scheduling.tick`` already
        logs one INFO line for a tick that did something (and the errors), nothing for an idle one."""
        outcome = scheduling.tick()
        if (verbosity and not quiet) or verbosity > 1:
            for name, result in outcome.results.items():
                self.stdout.write(f"{name}: {result}")
            for name, error in outcome.errors.items():
                self.stderr.write(f"{name}: FAILED {error}")
        return outcome
