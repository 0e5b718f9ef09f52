"""Rotate the key-folder signing key; the old public key stays trusted for old checkpoints."""
from typing import Any

from django.core.management.base import BaseCommand

from audits.keys import rotate_signing_key


class Command(BaseCommand):
    help = "Replace the checkpoint signing key in GOVAUDIT_KEY_DIR; old checkpoints stay verifiable."

    def handle(self, *args: Any, **options: Any) -> None:
        old, new = rotate_signing_key()
        self.stdout.write(f"retired: {old.encode()}\nactive:  {new.encode()}")
