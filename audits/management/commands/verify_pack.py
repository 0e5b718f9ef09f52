"""Verify an audit pack with the standalone verifier's checks, trusting this service's keys."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = ("Verify PACK.zip: manifest digests, DSSE signature, checkpoint signature, inclusion proofs, receipts and "
            "the PDF's PAdES signature. Trusts this service's log keys and signing certificates, plus any given.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("pack")
        parser.add_argument("--key", action="append", default=[], help="an extra trusted log verifier key")
        parser.add_argument("--cert", action="append", default=[], help="an extra trusted certificate (PEM file)")
        parser.add_argument("--json", action="store_true", help="print the whole result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        from audits.keys import trusted_keys
        from audits.pack_verifier import verify_pack
        from audits.packs.signing import trusted_certificates

        path = Path(options["pack"])
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        keys = [k.verifier.encode() for k in trusted_keys()] + options["key"]
        certs = trusted_certificates() + [Path(c).read_bytes() for c in options["cert"]]
        with path.open("rb") as fh:
            report = verify_pack(fh, log_keys=keys, pdf_certs=certs)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=1, default=str))
        if report.ok:
            f = report.facts
            if not options["json"]:
                self.stdout.write(f"OK: pack #{f.get('pack')} ({f.get('framework')}): {f.get('files')} files match the "
                                  f"signed manifest; {f.get('events_verified')} events proven against checkpoint size "
                                  f"{(f.get('checkpoint') or {}).get('size')}; PDF signed by {f.get('pdf_signer')}")
            return
        if not options["json"]:
            for p in report.problems:
                self.stdout.write(f"FAIL: {p}")
        raise CommandError(f"{len(report.problems)} problem(s): {', '.join(sorted(report.codes))}")
