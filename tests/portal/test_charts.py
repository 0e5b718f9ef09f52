"""The server-drawn SVG charts: pure functions of a report's result."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from governance.portal import charts

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML, or this raises


def _bars(svg: str) -> list[ET.Element]:
    return _parse(svg).findall(f"{SVG}rect")


DRIFT = {"detector": "TabularDrift", "correction": "bonferroni", "threshold": 0.0125, "features": [
    {"name": "age", "test": "ks", "statistic": 0.02, "p_value": 0.9, "drifted": False},
    {"name": "income", "test": "ks", "statistic": 0.4, "p_value": 1e-12, "drifted": True},
    {"name": "zip", "test": "chi2", "statistic": 1e9, "p_value": 0.0, "drifted": True},
    {"name": "b", "test": "ks", "statistic": None, "p_value": None, "drifted": False, "note": "NaN"}]}


def test_drift_bars_are_minus_log10_p_with_the_threshold_line() -> None:
    svg = charts.drift_chart(DRIFT)
    rects = _bars(svg)
    assert len(rects) == 3  # the undefined p-value gets a note, not a bar
    widths = [float(r.get("width")) for r in rects]
    assert widths[0] < widths[1] < widths[2]  # smaller p, longer bar; p = 0 is drawn at the cap
    assert [r.get("fill") for r in rects] == [charts.COLOUR_BAR, charts.COLOUR_ALERT, charts.COLOUR_ALERT]
    assert "p-value undefined" in svg and "threshold p = 0.0125" in svg and "p &lt; 1e-20" in svg
    line = [e for e in _parse(svg).findall(f"{SVG}line") if e.get("stroke-dasharray")]
    assert len(line) == 1
    x = float(line[0].get("x1"))
    axis_max = max(-math.log10(1e-12), charts.LOG_P_CAP)
    expected = charts.LABEL_W + charts.PLOT_W * (-math.log10(0.0125)) / min(axis_max * 1.1, charts.LOG_P_CAP)
    assert abs(x - expected) < 0.2


def test_bias_charts_one_per_rate_with_the_overall_line_and_undefined_groups() -> None:
    result = {"overall": {"selection_rate": 0.4, "true_positive_rate": 0.5, "false_positive_rate": 0.3},
              "groups": [
                  {"label": "g='a'", "count": 4, "selection_rate": 0.5, "true_positive_rate": 1.0,
                   "false_positive_rate": 0.0},
                  {"label": "g='b'", "count": 3, "selection_rate": 0.3333, "true_positive_rate": None,
                   "false_positive_rate": 0.3333,
                   "undefined": {"true_positive_rate": "no actual positives in this group"}}]}
    svgs = charts.bias_charts(result)
    assert len(svgs) == 3
    assert len(_bars(svgs[1])) == 1 and "undefined: no actual positives" in svgs[1]
    assert "overall 0.400" in svgs[0]


def test_labels_are_escaped_and_nothing_inline_is_styled() -> None:
    evil = '<script>alert(1)</script>" onload="x'
    svg = charts.hbar_chart([charts.Bar(evil, 0.5)], title=evil, axis_max=1.0)
    assert "<script>" not in svg and 'onload="' not in svg
    _parse(svg)
    assert " style=" not in svg


def test_validation_chart_only_bounded_metrics() -> None:
    svg = charts.validation_chart({"task": "classification", "metrics": {"accuracy": 0.8, "log_loss": 3.2,
                                                                         "precision": None}})
    assert len(_bars(svg)) == 1 and "precision" in svg and "log_loss" not in svg
    assert charts.validation_chart({"task": "regression", "metrics": {"rmse": 2.0}}) is None
    assert charts.drift_chart({"features": []}) is None and charts.bias_charts({"groups": []}) == []
