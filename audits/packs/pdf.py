"""The pack's PDF report, built with reportlab from facts alone (no ORM, no clock, no randomness).

reportlab's invariant mode fixes the creation date and document id, so the same inputs give the
same bytes before signing (a test holds this). Text uses the standard PDF fonts; characters they
cannot show are replaced, and the complete, exact data is in the evidence files beside the PDF.
Long tables are cut into blocks that repeat their header on every page.
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.shapes import Drawing, Line, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (BaseDocTemplate, CondPageBreak, Frame, PageBreak, PageTemplate,
                                Paragraph, Spacer, Table, TableStyle)

from audits.packs.checks import EXCEPTION, NOT_APPLICABLE, SATISFIED, ControlResult
from audits.packs.facts import EventRow, Facts, PromotionFact, ReportFact

TABLE_BLOCK = 120  # rows per table flowable: keeps reportlab's splitting linear in the row count
MAX_CELL_LINES = 40  # a table row cannot break across pages: longer text is cut (it is whole in evidence/)
PDF_ACCESS_ROWS = 1000  # access changes listed in the PDF; all are in evidence/access_changes.csv
MAX_FINDINGS_SHOWN = 6  # per control in the control table; the summary lists every exception
STATUS_LABEL = {SATISFIED: "Satisfied", EXCEPTION: "Exception", NOT_APPLICABLE: "Not applicable"}
STATUS_COLOUR = {SATISFIED: colors.HexColor("#1b7f3b"), EXCEPTION: colors.HexColor("#b3261e"),
                 NOT_APPLICABLE: colors.HexColor("#5f6368")}
INK = colors.HexColor("#202124")
RULE = colors.HexColor("#dadce0")
HEAD_BG = colors.HexColor("#eef1f5")
ACCENT = colors.HexColor("#1a4d8f")


@dataclass(frozen=True)
class PackMeta:
    """What the cover says about the pack itself."""

    pack_id: int
    framework_name: str
    citation: str
    scope_rule: str
    generator: str  # "govaudit 0.1.0"
    signer_subject: str
    log_key: str  # the verifier key string of the log / manifest key
    pdf_event_rows: int


def _t(value: Any) -> str:
    """Text for a Paragraph: escaped, and limited to what the standard fonts can draw."""
    text = "" if value is None else str(value)
    text = text.encode("cp1252", "replace").decode("cp1252")
    return escape(text)


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _ts_s(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    s = {
        "title": ParagraphStyle("title", parent=base["Title"], fontSize=22, leading=27, textColor=ACCENT,
                                alignment=TA_LEFT, spaceAfter=6),
        "subtitle": ParagraphStyle("subtitle", parent=base["Normal"], fontSize=11, leading=14, textColor=INK),
        "h1": ParagraphStyle("h1", parent=base["Heading1"], fontSize=15, leading=19, textColor=ACCENT,
                             spaceBefore=4, spaceAfter=6),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontSize=11.5, leading=14, textColor=INK,
                             spaceBefore=8, spaceAfter=4),
        "body": ParagraphStyle("body", parent=base["Normal"], fontSize=9, leading=11.5, textColor=INK),
        "small": ParagraphStyle("small", parent=base["Normal"], fontSize=7.5, leading=9.2, textColor=INK),
        "mono": ParagraphStyle("mono", parent=base["Normal"], fontName="Courier", fontSize=7, leading=8.6),
        "cell": ParagraphStyle("cell", parent=base["Normal"], fontSize=7.5, leading=9.2, textColor=INK),
        "cellb": ParagraphStyle("cellb", parent=base["Normal"], fontName="Helvetica-Bold", fontSize=7.5,
                                leading=9.2, textColor=INK),
    }
    return s


S = _styles()


def _p(text: Any, style: str = "cell") -> Paragraph:
    return Paragraph(_t(text), S[style])


def _status(status: str) -> Paragraph:
    colour = STATUS_COLOUR[status].hexval()[2:]
    return Paragraph(f'<font color="#{colour}"><b>{STATUS_LABEL[status]}</b></font>', S["cell"])


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], widths: Sequence[float],
           *, wrap: bool = True, font_size: float = 7.5) -> list[Table]:
    """Tables of at most TABLE_BLOCK rows each, header repeated on every page."""
    out: list[Table] = []
    head = [Paragraph(f"<b>{_t(h)}</b>", S["cell"]) for h in header]
    block: list[list[Any]] = []

    def flush() -> None:
        if not block:
            return
        t = Table([head, *block], colWidths=widths, repeatRows=1)
        t.setStyle(TableStyle([
            ("BACKGROUND", (0, 0), (-1, 0), HEAD_BG),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("FONTSIZE", (0, 1), (-1, -1), font_size),
            ("FONTNAME", (0, 1), (-1, -1), "Helvetica"),
            ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ]))
        out.append(t)
        block.clear()

    limits = [max(8, int(w / (font_size * 0.5))) * MAX_CELL_LINES for w in widths]
    for row in rows:
        block.append([c if not isinstance(c, str) or not wrap else _p(_fit(c, limits[i])) for i, c in enumerate(row)])
        if len(block) >= TABLE_BLOCK:
            flush()
    flush()
    if not out:
        t = Table([head, [_p("none")] + [""] * (len(header) - 1)], colWidths=widths)
        t.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, 0), HEAD_BG), ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE)]))
        out.append(t)
    return out


def _kv(rows: Sequence[tuple[str, Any]], widths: tuple[float, float] = (45 * mm, 125 * mm)) -> Table:
    t = Table([[_p(k, "cellb"), v if not isinstance(v, str) else _p(v)] for k, v in rows], colWidths=widths)
    t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                           ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]))
    return t


def _fit(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 60].rstrip() + " \u2026 (cut here; the complete text is in the evidence files)"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


# --- charts --------------------------------------------------------------------------------------

def _drift_chart(result: dict[str, Any]) -> Drawing | None:
    feats = [f for f in result.get("features") or [] if isinstance(f, dict)][:30]
    if not feats:
        return None
    names = [_clip(str(f.get("name")), 22) for f in feats]
    values = []
    for f in feats:
        p = f.get("p_value")
        values.append(min(50.0, -math.log10(max(float(p), 1e-300))) if isinstance(p, (int, float)) else 0.0)
    height = 38 + 13 * len(feats)
    d = Drawing(170 * mm, height)
    c = HorizontalBarChart()
    c.x, c.y, c.width, c.height = 40 * mm, 26, 120 * mm, height - 36
    c.data = [values]
    c.categoryAxis.categoryNames = names
    c.categoryAxis.labels.fontSize = 6.5
    c.categoryAxis.reverseDirection = True
    c.valueAxis.valueMin = 0
    c.valueAxis.valueMax = max(2.0, math.ceil(max(values) + 0.5))
    c.valueAxis.labels.fontSize = 6.5
    c.bars.strokeWidth = 0
    c.bars[0].fillColor = colors.HexColor("#7aa6d8")
    for i, f in enumerate(feats):
        if f.get("drifted"):
            c.bars[(0, i)].fillColor = STATUS_COLOUR[EXCEPTION]
    d.add(c)
    thr = result.get("threshold")
    if isinstance(thr, (int, float)) and thr > 0:
        x = c.x + c.width * min(1.0, -math.log10(thr) / c.valueAxis.valueMax)
        d.add(Line(x, c.y, x, c.y + c.height, strokeColor=INK, strokeDashArray=[2, 2], strokeWidth=0.6))
        d.add(String(x + 2, c.y + c.height + 2, f"threshold p = {thr:.3g}", fontSize=6, fillColor=INK))
    d.add(String(c.x, 2, "-log10(p-value) per feature; red = drifted", fontSize=6.5, fillColor=INK))
    return d


def _bias_chart(result: dict[str, Any]) -> Drawing | None:
    groups = [g for g in result.get("groups") or [] if isinstance(g, dict)][:16]
    if not groups:
        return None
    metrics = [("selection_rate", "selection rate", "#1a4d8f"), ("true_positive_rate", "true positive rate", "#2e9e5b"),
               ("false_positive_rate", "false positive rate", "#d9822b")]
    d = Drawing(170 * mm, 70 * mm)
    c = VerticalBarChart()
    c.x, c.y, c.width, c.height = 14 * mm, 18 * mm, 150 * mm, 45 * mm
    c.data = [[float(g.get(m) or 0.0) for g in groups] for m, _, _ in metrics]
    c.categoryAxis.categoryNames = [_clip(str(g.get("label")), 18) for g in groups]
    c.categoryAxis.labels.fontSize = 6
    c.categoryAxis.labels.angle = 30 if len(groups) > 5 else 0
    c.categoryAxis.labels.boxAnchor = "ne" if len(groups) > 5 else "n"
    c.valueAxis.valueMin, c.valueAxis.valueMax, c.valueAxis.valueStep = 0, 1, 0.25
    c.valueAxis.labels.fontSize = 6.5
    c.bars.strokeWidth = 0
    for i, (_, _, colour) in enumerate(metrics):
        c.bars[i].fillColor = colors.HexColor(colour)
    d.add(c)
    legend = Legend()
    legend.x, legend.y = 14 * mm, 68 * mm
    legend.fontSize = 6.5
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.colorNamePairs = [(colors.HexColor(colour), label) for _, label, colour in metrics]
    d.add(legend)
    return d


def _report_block(r: ReportFact) -> list[Any]:
    head = f"Report {r.id}: {r.kind} of {r.model} v{r.version} ({r.status}, finished {_ts(r.finished_at)})"
    out: list[Any] = [Paragraph(_t(head), S["h2"])]
    res = r.result or {}
    digest = f"result SHA-256 {r.result_digest or '-'}; inputs SHA-256 {r.inputs_digest}"
    if r.status != "succeeded":
        out.append(_p(f"Failed: {r.error_code}. {digest}", "small"))
        return out
    if r.kind == "drift":
        out.append(_p(f"{res.get('detector', '')}: drift {'DETECTED' if res.get('drift') else 'not detected'}; "
                      f"{res.get('n_drifted', 0)} of {res.get('n_features', 0)} features drifted "
                      f"(correction {res.get('correction')}, p = {res.get('p_val')}); reference n = "
                      f"{res.get('n_reference')}, current n = {res.get('n_current')}.", "small"))
        chart = _drift_chart(res)
        if chart is not None:
            out.append(chart)
        rows = [[str(f.get("name")), str(f.get("test", "")), _num(f.get("statistic")), _num(f.get("p_value")),
                 "yes" if f.get("drifted") else "no"] for f in res.get("features") or []]
        out += _table(["feature", "test", "statistic", "p-value", "drifted"], rows,
                      [60 * mm, 20 * mm, 30 * mm, 30 * mm, 20 * mm])
    elif r.kind == "bias":
        out.append(_p(f"Sensitive features {', '.join(res.get('sensitive_features') or [])}; "
                      f"{res.get('n_rows')} rows, {res.get('n_groups')} groups. Demographic parity difference "
                      f"{_num(res.get('demographic_parity_difference'))}, ratio "
                      f"{_num(res.get('demographic_parity_ratio'))}; equalized odds difference "
                      f"{_num(res.get('equalized_odds_difference'))}, ratio {_num(res.get('equalized_odds_ratio'))}.",
                      "small"))
        chart = _bias_chart(res)
        if chart is not None:
            out.append(chart)
        rows = [[str(g.get("label")), str(g.get("count")), _num(g.get("selection_rate")), _num(g.get("accuracy")),
                 _num(g.get("true_positive_rate")), _num(g.get("false_positive_rate"))]
                for g in res.get("groups") or []]
        out += _table(["group", "rows", "selection rate", "accuracy", "TPR", "FPR"], rows,
                      [55 * mm, 18 * mm, 25 * mm, 22 * mm, 22 * mm, 22 * mm])
    else:
        metrics = res.get("metrics") or {}
        rows = [[k, _num(v)] for k, v in sorted(metrics.items())]
        if res.get("latency"):
            rows += [[f"latency {k}", _num(v)] for k, v in sorted(res["latency"].items())]
        out.append(_p(f"Task {res.get('task')}; {res.get('n_rows')} rows.", "small"))
        out += _table(["metric", "value"], rows, [60 * mm, 40 * mm])
    out.append(_p(digest, "mono"))
    return out


def _num(value: Any) -> str:
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)


# --- sections ------------------------------------------------------------------------------------

def _cover(facts: Facts, meta: PackMeta) -> list[Any]:
    scope = ", ".join(m.name for m in facts.models) or "no model is in scope"
    log = facts.log
    out: list[Any] = [
        Spacer(1, 25 * mm),
        Paragraph(_t(f"{meta.framework_name} audit pack"), S["title"]),
        Paragraph(_t(meta.citation), S["subtitle"]),
        Spacer(1, 10 * mm),
        _kv([
            ("Framework", f"{meta.framework_name} ({meta.citation})"),
            ("Scope", f"{len(facts.models)} model(s): {scope}. {meta.scope_rule}."),
            ("Period", f"{_ts_s(facts.period_start)} to {_ts_s(facts.period_end)} (end excluded)"),
            ("Generated", f"{_ts_s(facts.generated_at)} by {meta.generator}"),
            ("Pack", f"#{meta.pack_id}"),
            ("Anchored to", f"signed checkpoint of the audit log '{log.origin}' at size {log.checkpoint_size}, "
                            f"signed {_ts_s(log.checkpoint_signed_at)}"),
            ("Checkpoint root", Paragraph(_t(log.checkpoint_root_hex), S["mono"])),
            ("Log and manifest key", Paragraph(_t(meta.log_key), S["mono"])),
            ("PDF signed by", meta.signer_subject),
        ]),
        Spacer(1, 8 * mm),
        Paragraph("How to check this pack", S["h2"]),
        _p("This PDF carries a PAdES signature covering the whole file. Beside it in the pack: evidence/ (every "
           "fact shown here as JSON and CSV, and every audit event of the period with its exact leaf bytes and an "
           "inclusion proof), checkpoint (the signed checkpoint the proofs end at), keys/ (public keys), "
           "manifest.json (an in-toto statement with the SHA-256 of every file) and manifest.dsse.json (that "
           "statement signed with the log's Ed25519 key). Verify with the standalone verifier "
           "(pack_verifier.py) or poppler's pdfsig, pinning the keys above through a channel you trust; see "
           "docs/audit-packs.md.", "body"),
        PageBreak(),
    ]
    return out


def _summary(facts: Facts, controls: list[ControlResult]) -> list[Any]:
    counts = {s: sum(1 for c in controls if c.status == s) for s in (SATISFIED, EXCEPTION, NOT_APPLICABLE)}
    deployed = sum(len(m.deployed) for m in facts.models)
    by_state: dict[str, int] = {}
    for p in facts.promotions:
        by_state[p.state] = by_state.get(p.state, 0) + 1
    rows = [
        ("Controls", f"{len(controls)}: {counts[SATISFIED]} satisfied, {counts[EXCEPTION]} with exceptions, "
                     f"{counts[NOT_APPLICABLE]} not applicable"),
        ("Models in scope", f"{len(facts.models)} ({deployed} deployed version(s))"),
        ("Promotions in the period", f"{len(facts.promotions)}" + (": " + ", ".join(
            f"{n} {s}" for s, n in sorted(by_state.items())) if by_state else "")),
        ("Waivers", f"{len(facts.waivers)} in effect during the period"),
        ("Evidence reports", str(len(facts.reports))),
        ("Audit events in the period", f"{facts.log.events_in_period} (log verification: "
                                       f"{'passed' if facts.log.verification.get('ok') else 'FAILED'})"),
        ("Security events", f"{facts.security.total}: {sum(facts.security.failed_logins.values())} failed sign-ins, "
                            f"{facts.security.rejected_tokens} rejected tokens, {facts.security.denials} refusals"),
        ("Access changes", str(len(facts.access_changes))),
    ]
    out: list[Any] = [Paragraph("Summary", S["h1"]), _kv(rows), Paragraph("Exceptions", S["h2"])]
    exc = [(c.id, f) for c in controls if c.status == EXCEPTION for r in c.checks if r.status == EXCEPTION
           for f in r.findings]
    out += _table(["control", "finding"], [[cid, f] for cid, f in exc], [32 * mm, 138 * mm])
    out.append(Paragraph("Waivers", S["h2"]))
    out += _table(["waiver", "version", "gate", "granted", "expires", "justification"],
                  [[f"#{w.id}", f"{w.model} v{w.version}", w.gate, f"{_ts(w.granted_at)} by {w.granted_by}",
                    _ts(w.expires_at) + (f" (revoked {_ts(w.revoked_at)})" if w.revoked_at else ""), w.justification]
                   for w in facts.waivers],
                  [12 * mm, 25 * mm, 32 * mm, 30 * mm, 25 * mm, 46 * mm])
    out.append(PageBreak())
    return out


def _control_reason(c: ControlResult) -> str:
    if c.status != EXCEPTION:
        return c.reason
    findings = [f for r in c.checks if r.status == EXCEPTION for f in r.findings]
    shown = "; ".join(findings[:MAX_FINDINGS_SHOWN])
    more = len(findings) - MAX_FINDINGS_SHOWN
    return shown + (f"; and {more} more (all listed under Exceptions in the summary)" if more > 0 else "")


def _controls(controls: list[ControlResult]) -> list[Any]:
    rows = [[Paragraph(f"<b>{_t(c.id)}</b><br/>{_t(c.title)}", S["cell"]),
             Paragraph("<br/>".join(_t(e) for e in c.evidence), S["cell"]), _status(c.status), _control_reason(c)]
            for c in controls]
    return [Paragraph("Controls", S["h1"]),
            _p("Each control is answered by the checks listed in the catalogue (docs/audit-packs.md); its status is "
               "the worst of theirs. Evidence names files in this pack.", "small"), Spacer(1, 2 * mm),
            *_table(["control", "evidence", "status", "reason"], rows, [34 * mm, 38 * mm, 20 * mm, 78 * mm]),
            PageBreak()]


def _inventory(facts: Facts) -> list[Any]:
    rows = [[m.name, m.team, m.risk_tier, ", ".join(m.data_categories) or "-",
             ", ".join(f"{v.stage} v{v.version}" for v in m.deployed) or "not deployed",
             _clip(m.intended_use or "(not stated)", 300)] for m in facts.models]
    return [Paragraph("Model inventory", S["h1"]),
            *_table(["model", "team", "risk tier", "data categories", "deployed", "intended use"], rows,
                    [30 * mm, 20 * mm, 15 * mm, 28 * mm, 25 * mm, 52 * mm]),
            PageBreak()]


def _promotion_block(p: PromotionFact) -> list[Any]:
    head = (f"Promotion #{p.id}: {p.model} v{p.version} to {p.target_stage}"
            + (" (rollback)" if p.kind == "rollback" else "") + f" - {p.state}")
    policy = f"{p.policy['name']} v{p.policy['version']} (digest {p.policy['digest'][:16]}...)" if p.policy else "none"
    out: list[Any] = [Paragraph(_t(head), S["h2"]), _kv([
        ("Requested", f"{_ts(p.created_at)} by {p.requester}: {p.reason}"),
        ("Decided", _ts(p.decided_at)),
        ("Policy", policy),
        ("Approvers", "; ".join(f"{a.get('user')} ({', '.join(a.get('roles') or [])}) {a.get('decision')} "
                                f"{a.get('decided_at', '')[:16]}" for a in p.approvals) or "none"),
        ("Receipt", "signed receipt verifies" if p.receipt_ok else (
            "no receipt (still open)" if not p.receipt else f"DOES NOT VERIFY: {p.receipt_detail}")),
    ], widths=(30 * mm, 140 * mm))]
    gates = [[str(g.get("gate")), str(g.get("status")), "yes" if g.get("waived") else "", str(g.get("reason") or "")]
             for g in p.gates]
    out += _table(["gate", "result", "waived", "reason"], gates, [45 * mm, 18 * mm, 13 * mm, 94 * mm])
    if p.evidence:
        out += _table(["evidence", "kind", "SHA-256 of the result"],
                      [[f"report {e.get('id')}", str(e.get("kind") or ""), Paragraph(_t(e.get("digest")), S["mono"])]
                       for e in p.evidence], [25 * mm, 20 * mm, 125 * mm])
    if p.waivers:
        out += _table(["waiver", "gate", "justification"],
                      [[f"#{w.get('id')}", str(w.get("gate")), str(w.get("justification"))] for w in p.waivers],
                      [15 * mm, 45 * mm, 110 * mm])
    return out


def _promotions(facts: Facts) -> list[Any]:
    out: list[Any] = [Paragraph("Promotions in the period", S["h1"])]
    if not facts.promotions:
        out.append(_p("No promotion of a model in scope was requested or decided in the period.", "body"))
    for p in facts.promotions:
        out.append(CondPageBreak(50 * mm))
        out += _promotion_block(p)
    out.append(PageBreak())
    return out


def _reports(facts: Facts) -> list[Any]:
    out: list[Any] = [Paragraph("Evidence reports", S["h1"]),
                      _p("Reports of the versions in scope that are deployed, were decided on, or finished in the "
                         "period. Complete results are in evidence/reports.json.", "small")]
    if not facts.reports:
        out.append(_p("No report.", "body"))
    for r in facts.reports:
        block = _report_block(r)
        out.append(CondPageBreak(60 * mm))
        out += block
    out.append(PageBreak())
    return out


def _access(facts: Facts) -> list[Any]:
    now = facts.generated_at
    users = [[u.username, "active" if u.active else "deactivated", ", ".join(u.roles) or "-",
              ", ".join(u.teams) or "-", _ts(u.last_login)] for u in facts.users]
    tokens = [[f"{t.prefix}...", t.name, t.user, t.team or "all of the user's", _ts(t.created_at), _ts(t.expires_at),
               "revoked " + _ts(t.revoked_at) if t.revoked_at else ("active" if t.active(now) else "expired"),
               _ts(t.last_used_at)] for t in facts.tokens]
    changes = [[f"#{e.seq}", e.ts[:16].replace("T", " "), e.action, e.actor, e.target, e.detail]
               for e in facts.access_changes[:PDF_ACCESS_ROWS]]
    more = len(facts.access_changes) - len(changes)
    note = [_p(f"The first {len(changes)} of {len(facts.access_changes)}; all are in evidence/access_changes.csv.",
               "small")] if more > 0 else []
    return [Paragraph("Access review", S["h1"]),
            Paragraph("People and service accounts", S["h2"]),
            *_table(["user", "status", "roles", "teams", "last sign-in"], users,
                    [35 * mm, 20 * mm, 50 * mm, 35 * mm, 30 * mm]),
            Paragraph("API tokens", S["h2"]),
            *_table(["token", "name", "user", "team scope", "created", "expires", "state", "last used"], tokens,
                    [16 * mm, 22 * mm, 20 * mm, 20 * mm, 24 * mm, 24 * mm, 20 * mm, 24 * mm]),
            Paragraph("Changes in the period", S["h2"]), *note,
            *_table(["event", "when", "action", "by", "target", "detail"], changes,
                    [13 * mm, 24 * mm, 35 * mm, 22 * mm, 28 * mm, 48 * mm]),
            PageBreak()]


def _event_rows(rows: Sequence[EventRow]) -> list[list[str]]:
    return [[str(e.seq), e.ts[:19].replace("T", " "), _clip(e.action, 34), _clip(e.actor, 20), _clip(e.target, 30),
             _clip(e.detail, 48)] for e in rows]


_EVENT_WIDTHS = [12 * mm, 27 * mm, 40 * mm, 24 * mm, 32 * mm, 35 * mm]


def _security(facts: Facts) -> list[Any]:
    s = facts.security
    failed = [[u, str(n)] for u, n in sorted(s.failed_logins.items(), key=lambda kv: (-kv[1], kv[0]))]
    out: list[Any] = [Paragraph("Security events", S["h1"]), _kv([
        ("Failed sign-ins", str(sum(s.failed_logins.values()))), ("Successful sign-ins", str(s.successful_logins)),
        ("Rejected API tokens", str(s.rejected_tokens)), ("Refused actions (403)", str(s.denials)),
    ]), Paragraph("Failed sign-ins by username", S["h2"])]
    out += _table(["username", "failed sign-ins"], failed, [60 * mm, 30 * mm])
    out.append(Paragraph("Events", S["h2"]))
    if s.total > len(s.rows):
        out.append(_p(f"The first {len(s.rows)} of {s.total}; all are in evidence/security_events.csv.", "small"))
    out += _table(["seq", "time (UTC)", "action", "actor", "target", "detail"], _event_rows(s.rows), _EVENT_WIDTHS,
                  wrap=False, font_size=6.5)
    out.append(PageBreak())
    return out


def _log(facts: Facts, meta: PackMeta) -> list[Any]:
    log = facts.log
    v = log.verification
    verdict = "PASSED" if v.get("ok") else f"FAILED: {v.get('problem')}: {v.get('detail')}"
    out: list[Any] = [Paragraph("Audit log for the period", S["h1"]), _kv([
        ("Verification", f"{verdict} (whole log, {v.get('size')} events, {v.get('checkpoints_checked')} stored "
                         "checkpoints checked)"),
        ("Anchor", f"checkpoint '{log.origin}' size {log.checkpoint_size}"),
        ("Events in the period", f"{log.events_in_period}" + (
            f" (seq {log.first_seq} to {log.last_seq})" if log.first_seq is not None else "")),
        ("Inclusion proofs", "every event's proof reaches the checkpoint root" if log.proofs_ok
         else "PROOFS DO NOT REACH THE CHECKPOINT ROOT"),
    ]), Paragraph("Events by action", S["h2"])]
    out += _table(["action", "events"], [[a, str(n)] for a, n in sorted(log.counts_by_action.items())],
                  [90 * mm, 25 * mm], wrap=False)
    out.append(Paragraph("Events", S["h2"]))
    if log.events_in_period > len(log.rows):
        out.append(_p(f"The first {len(log.rows)} of {log.events_in_period} events; every event, with its leaf bytes "
                      "and inclusion proof, is in evidence/events.jsonl (and evidence/events.csv).", "small"))
    out += _table(["seq", "time (UTC)", "action", "actor", "target", "detail"], _event_rows(log.rows),
                  _EVENT_WIDTHS, wrap=False, font_size=6.5)
    return out


def build_pdf(facts: Facts, controls: list[ControlResult], meta: PackMeta) -> tuple[bytes, int]:
    """The report as PDF bytes (unsigned) and its page count."""
    buf = io.BytesIO()
    title = f"{meta.framework_name} audit pack #{meta.pack_id}"
    doc = BaseDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
                          bottomMargin=16 * mm, title=title, author=meta.generator,
                          subject=f"{facts.period_start:%Y-%m-%d} to {facts.period_end:%Y-%m-%d}",
                          creator=meta.generator, invariant=1)
    band = f"{title}  |  {facts.period_start:%Y-%m-%d} to {facts.period_end:%Y-%m-%d}  |  checkpoint size " \
           f"{facts.log.checkpoint_size}"

    def decorate(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#5f6368"))
        canvas.drawString(20 * mm, A4[1] - 11 * mm, band.encode("cp1252", "replace").decode("cp1252"))
        canvas.drawRightString(A4[0] - 20 * mm, 9 * mm, f"page {document.page}")
        canvas.setStrokeColor(RULE)
        canvas.line(20 * mm, A4[1] - 12.5 * mm, A4[0] - 20 * mm, A4[1] - 12.5 * mm)
        canvas.restoreState()

    frame = Frame(doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body")
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=decorate)])
    story: list[Any] = []
    story += _cover(facts, meta)
    story += _summary(facts, controls)
    story += _controls(controls)
    story += _inventory(facts)
    story += _promotions(facts)
    story += _reports(facts)
    story += _access(facts)
    story += _security(facts)
    story += _log(facts, meta)
    doc.build(story)
    return buf.getvalue(), doc.page
