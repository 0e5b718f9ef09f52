"""Fail reports stuck in running (their worker died) by hand, e.g. after an outage."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from monitoring import services


class Command(BaseCommand):
    help = "Mark reports running for longer than --older-than seconds as failed (worker_lost)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=int, default=3600, help="Seconds (default 3600).")

    def handle(self, *args: Any, **opts: Any) -> None:
        reaped = services.report_reap(older_than=timedelta(seconds=opts["older_than"]))
        self.stdout.write(f"{len(reaped)} report(s) marked failed" +
                          (f": {', '.join(str(r.pk) for r in reaped)}" if reaped else ""))
