"""Write the audit log export (JSON Lines) to a file, with the latest checkpoint and keys beside it."""
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from audits.checkpoints import checkpoint_create, latest_checkpoint
from audits.context import system_actor
from audits.keys import trusted_keys
from audits.selectors import export_lines
from audits.services import Target, audit_append


class Command(BaseCommand):
    help = "Export the audit log to FILE (JSON Lines), plus FILE.checkpoint and FILE.keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")

    def handle(self, *args: Any, **options: Any) -> None:
        cp = checkpoint_create() or latest_checkpoint()
        if cp is None:
            raise CommandError("The audit log is empty.")
        path = Path(options["file"])
        with transaction.atomic():
            audit_append(actor=system_actor("audit_export"), action="audits.export.downloaded",
                         target=Target("audits.log", "export", f"events [0, {cp.size})"),
                         payload={"start": 0, "end": cp.size, "file": path.name})
        with path.open("wb") as fh:
            for line in export_lines(start=0, end=cp.size):
                fh.write(line)
        path.with_name(path.name + ".checkpoint").write_text(cp.note)
        path.with_name(path.name + ".keys").write_text("".join(k.verifier.encode() + "\n" for k in trusted_keys()))
        self.stdout.write(f"{cp.size} events -> {path} (+ .checkpoint, .keys)")
