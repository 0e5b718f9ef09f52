"""Generate a checkpoint signing key for production (printed once; store it in your secret store)."""
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from audits.core.note import SignerKey


class Command(BaseCommand):
    help = "Print a new signer key (for AUDIT_SIGNING_KEY) on stdout and its public verifier key on stderr."

    def handle(self, *args: Any, **options: Any) -> None:
        key = SignerKey.generate(settings.AUDIT_LOG_ORIGIN)
        self.stdout.write(key.encode())
        self.stderr.write(f"verifier key (publish it): {key.verifier().encode()}")
