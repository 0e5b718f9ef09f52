"""Charts of report results as inline SVG, drawn on the server (no JavaScript, no chart library).

Pure functions from a report's ``result`` (``docs/detectors.md``) to SVG markup. Colours and
sizes are SVG presentation attributes, not ``style`` attributes, so the portal's
Content-Security-Policy (no inline styles, no scripts) allows them. Every text is escaped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 680
LABEL_W = 190
VALUE_W = 90
ROW_H = 22
BAR_H = 14
TOP = 44
PLOT_W = WIDTH - LABEL_W - VALUE_W - 10

COLOUR_BAR = "#417690"      # the admin's blue
COLOUR_ALERT = "#ba2121"    # the admin's error red
COLOUR_MUTED = "#9a9a9a"
COLOUR_LINE = "#333333"
# -log10 of p-values is drawn up to this; smaller p-values are shown at the cap, marked ">=".
LOG_P_CAP = 20.0


@dataclass(frozen=True)
class Bar:
    """One row: a label, a value (None when undefined), whether to draw it as an alert, and its text."""

    label: str
    value: float | None
    alert: bool = False
    text: str = ""


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def hbar_chart(bars: list[Bar], *, title: str, axis_max: float, reference: float | None = None,
               reference_label: str = "", caption: str = "") -> SafeString:
    """Horizontal bars on a common scale [0, axis_max], with an optional vertical reference line."""
    axis_max = axis_max if axis_max > 0 else 1.0
    axis_y = TOP + ROW_H * max(len(bars), 1) + 4
    height = axis_y + (36 if caption else 20)
    x0 = LABEL_W

    def x(value: float) -> float:
        return x0 + PLOT_W * min(max(value, 0.0), axis_max) / axis_max

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="portal-chart" role="img" '
             f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="16" font-size="13" font-weight="bold" fill="{COLOUR_LINE}">{escape(title)}</text>',
             f'<line x1="{x0}" y1="{TOP - 6}" x2="{x0}" y2="{axis_y}" stroke="{COLOUR_MUTED}" stroke-width="1"/>']
    for i, bar in enumerate(bars):
        y = TOP + i * ROW_H
        parts.append(f'<text x="{x0 - 6}" y="{y + BAR_H - 2}" font-size="12" text-anchor="end" '
                     f'fill="{COLOUR_LINE}">{escape(bar.label[:32])}</text>')
        if bar.value is None:
            parts.append(f'<text x="{x0 + 4}" y="{y + BAR_H - 2}" font-size="12" font-style="italic" '
                         f'fill="{COLOUR_MUTED}">{escape(bar.text or "undefined")}</text>')
            continue
        w = max(x(bar.value) - x0, 1.0)
        colour = COLOUR_ALERT if bar.alert else COLOUR_BAR
        parts.append(f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{colour}">'
                     f'<title>{escape(bar.label)}: {escape(bar.text or _fmt(bar.value))}</title></rect>')
        parts.append(f'<text x="{x0 + PLOT_W + 8}" y="{y + BAR_H - 2}" font-size="12" '
                     f'fill="{colour}">{escape(bar.text or _fmt(bar.value))}</text>')
    parts.append(f'<line x1="{x0}" y1="{axis_y}" x2="{x0 + PLOT_W}" y2="{axis_y}" stroke="{COLOUR_MUTED}" '
                 'stroke-width="1"/>')
    for frac in (0.0, 0.5, 1.0):
        value = axis_max * frac
        parts.append(f'<text x="{x0 + PLOT_W * frac:.1f}" y="{axis_y + 14}" font-size="11" text-anchor="middle" '
                     f'fill="{COLOUR_MUTED}">{_fmt(value, 2)}</text>')
    if reference is not None and math.isfinite(reference):
        rx = x(reference)
        parts.append(f'<line x1="{rx:.1f}" y1="{TOP - 8}" x2="{rx:.1f}" y2="{axis_y}" stroke="{COLOUR_LINE}" '
                     'stroke-width="1.5" stroke-dasharray="4 3"/>')
        if reference_label:
            parts.append(f'<text x="{rx + 4:.1f}" y="{TOP - 10}" font-size="11" fill="{COLOUR_LINE}">'
                         f'{escape(reference_label)}</text>')
    if caption:
        parts.append(f'<text x="0" y="{axis_y + 30}" font-size="11" fill="{COLOUR_MUTED}">{escape(caption)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def drift_chart(result: dict[str, Any]) -> SafeString | None:
    """Per feature, -log10(p-value) against the threshold the correction used: beyond the line, drifted."""
    features = result.get("features") or []
    if not features:
        return None
    threshold = _num(result.get("threshold"))
    bars = []
    for f in features:
        p = _num(f.get("p_value"))
        drifted = bool(f.get("drifted"))
        if p is None:
            bars.append(Bar(str(f.get("name", "?")), None, text="p-value undefined"))
            continue
        score = LOG_P_CAP if p <= 0 else min(-math.log10(p), LOG_P_CAP)
        shown = f"p < 1e-{LOG_P_CAP:.0f}" if p <= 0 else f"p = {p:.2g}"
        bars.append(Bar(str(f.get("name", "?")), score, alert=drifted,
                        text=shown + (", drifted" if drifted else "")))
    reference = -math.log10(threshold) if threshold and threshold > 0 else None
    axis = max([b.value for b in bars if b.value is not None] + [reference or 0.0, 1.0])
    return hbar_chart(bars, title=f"Drift per feature ({result.get('detector', 'test')}, "
                                  f"{result.get('correction', '')} correction)",
                      axis_max=min(axis * 1.1, LOG_P_CAP), reference=reference,
                      reference_label=f"threshold p = {threshold:.3g}" if threshold else "",
                      caption="Bar length: -log10(p-value). Red bars are features flagged as drifted.")


BIAS_RATES = (("selection_rate", "Selection rate"), ("true_positive_rate", "True positive rate"),
              ("false_positive_rate", "False positive rate"))


def bias_charts(result: dict[str, Any]) -> list[SafeString]:
    """One chart per rate: the rate of each group, with the overall rate as the reference line."""
    groups = result.get("groups") or []
    if not groups:
        return []
    overall = result.get("overall") or {}
    charts = []
    for key, label in BIAS_RATES:
        if not any(key in g for g in groups):
            continue
        bars = []
        for g in groups:
            value = _num(g.get(key))
            reason = (g.get("undefined") or {}).get(key)
            bars.append(Bar(str(g.get("label", "?")), value,
                            text=_fmt(value) + f" (n={g.get('count', '?')})" if value is not None else
                            ("undefined: " + reason[:60] if reason else "undefined")))
        ref = _num(overall.get(key))
        charts.append(hbar_chart(bars, title=f"{label} per group", axis_max=1.0, reference=ref,
                                 reference_label=f"overall {_fmt(ref)}" if ref is not None else ""))
    return charts


BOUNDED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def validation_chart(result: dict[str, Any]) -> SafeString | None:
    """The metrics bounded by [0, 1] (accuracy, precision, recall, F1, ROC AUC) as bars."""
    metrics = result.get("metrics") or {}
    bars = [Bar(name, _num(metrics.get(name)), text="" if _num(metrics.get(name)) is not None else "undefined")
            for name in BOUNDED_METRICS if name in metrics]
    if not bars:
        return None
    return hbar_chart(bars, title=f"Validation metrics ({result.get('task', 'classification')})", axis_max=1.0)
