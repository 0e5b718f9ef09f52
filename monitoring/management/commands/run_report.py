"""Compute one report synchronously, as the system, through the same services as the API and workers.

For an operator re-running evidence by hand or on a machine without workers; the report and its
audit events are exactly those a worker would have written (the request is not enqueued, so no
worker computes it a second time).
"""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from governance.access import Principal
from governance.errors import DomainError
from monitoring import services
from monitoring.models import ReportKind, ReportStatus
from registry import selectors

STAGES = ["request", "start", "compute", "finish"]


def summary(kind: str, result: dict[str, Any]) -> list[str]:
    """A few human lines about a result; the full JSON is available with --json."""
    if kind == ReportKind.DRIFT:
        lines = [f"drift: {result.get('drift')} ({result.get('n_drifted')}/{result.get('n_features')} features "
                 f"drifted, {result.get('correction')} threshold {result.get('threshold')})"]
        lines += [f"  {f['name']}: p={f.get('p_value')} drifted={f.get('drifted')}" for f in result.get("features", [])]
        return lines
    if kind == ReportKind.BIAS:
        return [f"{key}: {result.get(key)}" for key in ("n_rows", "n_groups", "demographic_parity_difference",
                                                       "demographic_parity_ratio", "equalized_odds_difference",
                                                       "equalized_odds_ratio")]
    return [f"{key}: {value}" for key, value in (result.get("metrics") or {}).items()]


class Command(BaseCommand):
    help = "Run one drift, bias or validation report now (no worker) and print its summary."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # The brief's interface is ``--version N``; Django's own --version (print Django's) yields.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True)
        parser.add_argument("--version", required=True, type=int, dest="number")
        parser.add_argument("--kind", required=True, choices=ReportKind.values)
        parser.add_argument("--reference", type=int, help="Dataset id (drift).")
        parser.add_argument("--current", type=int, help="Dataset id (drift).")
        parser.add_argument("--evaluation", type=int, help="Dataset id (bias, validation).")
        parser.add_argument("--options", default="{}", help="Options as a JSON object.")
        parser.add_argument("--json", action="store_true", help="Print the whole result as JSON.")
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **opts: Any) -> None:
        actor = Principal.of_system("run_report")
        try:
            options = json.loads(opts["options"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--options is not JSON: {exc}") from exc
        roles = services.DATASET_ROLES[opts["kind"]]
        datasets = {role: opts[role] for role in roles}
        missing = [f"--{role}" for role, pk in datasets.items() if pk is None]
        if missing:
            raise CommandError(f"A {opts['kind']} report needs {' and '.join(missing)}.")
        bar = None if opts["quiet"] else tqdm(total=len(STAGES), unit=" stage", file=self.stderr._out)

        def stage(name: str) -> None:
            if bar is not None:
                bar.set_description(name)
                bar.update(1)

        try:
            model = selectors.model_get(principal=actor, name=opts["model"])
            version = selectors.version_get(principal=actor, model=model, number=opts["number"])
            stage("request")
            report = services.report_request(actor=actor, version=version, kind=opts["kind"], datasets=datasets,
                                             options=options, enqueue=False)
            report = services.report_compute(report_id=report.pk, on_stage=stage)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        finally:
            if bar is not None:
                bar.close()
        assert report is not None
        if report.status != ReportStatus.SUCCEEDED:
            raise CommandError(f"report {report.pk} {report.status}: {report.error_code}: {report.error_message}")
        self.stdout.write(f"report {report.pk} succeeded; result sha256 {report.result_digest}")
        for line in summary(report.kind, report.result or {}):
            self.stdout.write(line)
        if opts["json"]:
            self.stdout.write(json.dumps(report.result, indent=2, sort_keys=True))
