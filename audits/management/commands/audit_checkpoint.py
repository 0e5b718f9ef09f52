"""Sign a checkpoint of the audit log now (the schedule does it every N events or T seconds)."""
from typing import Any

from django.core.management.base import BaseCommand

from audits.checkpoints import checkpoint_create, latest_checkpoint


class Command(BaseCommand):
    help = "Sign a checkpoint at the current size of the audit log and print it."

    def handle(self, *args: Any, **options: Any) -> None:
        cp = checkpoint_create() or latest_checkpoint()
        if cp is None:
            self.stderr.write("The audit log is empty; nothing to checkpoint.")
            return
        self.stdout.write(cp.note, ending="")
