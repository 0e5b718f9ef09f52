"""Verify the whole audit log; optionally against a checkpoint kept outside the database."""
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from audits.verification import verification_run


class Command(BaseCommand):
    help = "Verify every event, checkpoint and signature; exit 1 naming the first bad seq on failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--checkpoint", help="A signed checkpoint file kept outside the database.")
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        external = Path(options["checkpoint"]).read_bytes() if options["checkpoint"] else None
        bar = None if options["quiet"] else tqdm(unit=" events", file=self.stderr._out, mininterval=0.5)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                bar.refresh()

        _, report = verification_run(external_checkpoint=external, progress=progress)
        if bar is not None:
            bar.close()
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        if not report.ok:
            raise CommandError(f"FAILED at seq {report.first_bad_seq}: {report.problem}: {report.detail}")
        self.stdout.write(f"OK: {report.size} events, {report.checkpoints_checked} checkpoint(s) verified")
