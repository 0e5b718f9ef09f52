"""Run the dedicated audit-log sequencer until SIGTERM/SIGINT (one per deployment; extras stand by)."""
import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audits.services import sequencer_run


class Command(BaseCommand):
    help = ("Number queued audit events as they commit, holding the sequencer lock, so that requests never "
            "sequence other writers' events. Stops cleanly on SIGTERM or SIGINT.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--nap-ms", type=float, default=30.0,
                            help="pause after a batch that emptied the queue (default 30 ms): the bound on how "
                                 "long a committed event waits for its seq, plus one batch; shorter naps mean "
                                 "more, smaller transactions (docs/audit-log.md, 'Sequencing')")
        parser.add_argument("--idle-nap-ms", type=float, default=100.0,
                            help="longest pause while the queue stays empty (default 100 ms): the nap doubles "
                                 "from --nap-ms up to this, and the first event after a quiet spell waits at most this")
        parser.add_argument("--vacuum-seconds", type=float, default=5.0,
                            help="VACUUM the queue table this often on PostgreSQL (default 5 s)")
        parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: run until signalled)")

    def handle(self, *args: Any, **options: Any) -> None:
        import time

        if not (0 < options["nap_ms"] <= 1000 and options["nap_ms"] <= options["idle_nap_ms"] <= 10_000
                and options["vacuum_seconds"] > 0 and options["seconds"] >= 0):
            self.stderr.write("--nap-ms must be in (0, 1000], --idle-nap-ms in [--nap-ms, 10000], "
                              "--vacuum-seconds > 0, --seconds >= 0")
            raise SystemExit(2)
        stop = {"now": False}

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        deadline = time.monotonic() + options["seconds"] if options["seconds"] else None
        self.stdout.write("audit sequencer: waiting for the sequencer lock")
        moved = sequencer_run(
            should_stop=lambda: stop["now"] or (deadline is not None and time.monotonic() >= deadline),
            nap=options["nap_ms"] / 1000, idle_nap=options["idle_nap_ms"] / 1000,
            vacuum_every=options["vacuum_seconds"])
        self.stdout.write(f"audit sequencer: stopped after sequencing {moved} event(s)")
