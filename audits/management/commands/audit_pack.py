"""Generate an audit pack now (in this process), or run an export schedule now."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from governance.access import Principal
from governance.errors import DomainError


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"{text!r} is not an ISO 8601 date or time.") from exc
    return value if timezone.is_aware(value) else value.replace(tzinfo=timezone.utc)


class Command(BaseCommand):
    help = "Generate an audit pack (HIPAA, GDPR or SOC 2) for a period, or run an export schedule now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--framework", choices=["hipaa", "gdpr", "soc2"])
        parser.add_argument("--days", type=int, default=30, help="period: the last N days (default 30)")
        parser.add_argument("--since", help="period start (ISO 8601; overrides --days)")
        parser.add_argument("--until", help="period end (ISO 8601; default now)")
        parser.add_argument("--models", default="", help="comma-separated model names (default: all in scope)")
        parser.add_argument("--schedule", type=int, help="run this export schedule now instead")

    def handle(self, *args: Any, **options: Any) -> None:
        from audits.packs import schedules, services

        if options["schedule"] is not None:
            export = schedules.pack_schedule_run(schedule_id=options["schedule"])
            if export is None:
                raise CommandError("The run failed; an alert was raised (see the portal's alerts).")
            self.stdout.write(f"exported {export.destination}/{export.name} (sha256 {export.sha256})")
            return
        if not options["framework"]:
            raise CommandError("Give --framework (or --schedule).")
        until = _when(options["until"]) if options["until"] else timezone.now()
        since = _when(options["since"]) if options["since"] else until - timedelta(days=options["days"])
        models = [m.strip() for m in options["models"].split(",") if m.strip()]
        try:
            pack = services.pack_request(actor=Principal.of_system("audit_pack"), framework=options["framework"],
                                         period_start=since, period_end=until, models=models, enqueue=False)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        pack = services.pack_generate(pack_id=pack.pk)
        if pack is None or pack.status != "succeeded":
            raise CommandError(f"pack failed: {pack.error_code if pack else '?'}: {pack.error_message if pack else ''}")
        self.stdout.write(f"{services.pack_path(pack)}\nsha256 {pack.sha256}; {pack.pages} pages; {pack.event_count} "
                          f"events; controls {pack.summary}")
