"""The figures the promotion benchmark derives from its measurements (tests/benchmarks/promotions.py)."""
from __future__ import annotations

import math

from tests.benchmarks.promotions import p95_target_needs, summarise


def _round(ops_s: list[float], wall: float) -> dict:
    return {"ops": ops_s, "lat_register": [x / 2 for x in ops_s], "lat_promote": [x / 2 for x in ops_s],
            "failed": 0, "errors": [], "wall_register": wall / 2, "wall_promote": wall / 2,
            "evidence_seconds": 0.0, "foreign_cpu_pct": 0.0, "own_cpu_seconds": 0.012 * len(ops_s)}


def test_the_tail_is_p95_over_the_mean() -> None:
    """Every op alike gives a tail of 1; one slow op in twenty lifts the p95, not the mean much."""
    even = summarise([_round([0.05] * 100, 1.0)])
    assert even["mean_ms"] == 50.0 and even["tail"] == 1.0
    assert even["cpu_ms_per_op"] == 12.0  # the side's own CPU over its ops
    skewed = summarise([_round([0.05] * 90 + [0.2] * 10, 1.0)])
    assert skewed["p95_ms"] == 200.0 and skewed["mean_ms"] == 65.0 and skewed["tail"] == round(200 / 65, 2)


def test_the_p95_target_is_a_throughput_target_at_a_fixed_client_count() -> None:
    """8 closed-loop clients: a 60 ms p95 with a tail of 1.2 means a 50 ms mean, so 160 ops/s.

    Against MLflow's 240 ms p95, a quarter is 60 ms: exactly that. Halve MLflow's p95 and the
    throughput needed doubles; a heavier tail of our own raises it in proportion.
    """
    assert p95_target_needs(clients=8, ours_p95_ms=60, ours_mean_ms=50, theirs_p95_ms=240) == 160.0
    assert p95_target_needs(clients=8, ours_p95_ms=60, ours_mean_ms=50, theirs_p95_ms=120) == 320.0
    assert p95_target_needs(clients=8, ours_p95_ms=75, ours_mean_ms=50, theirs_p95_ms=240) == 200.0
    assert math.isnan(p95_target_needs(clients=8, ours_p95_ms=60, ours_mean_ms=0, theirs_p95_ms=240))


def test_an_open_loop_call_is_charged_the_time_it_started_late() -> None:
    """``--rate``: a call due 50 ms ago that takes 10 ms counts 60 ms; one due later waits for its instant."""
    import time

    from tests.benchmarks.promotions import Call, _paced

    def call() -> Call:
        time.sleep(0.01)
        return Call(seq=1, ok=True, latency=0.01)

    late = _paced(call, time.perf_counter() - 0.05)
    assert 0.059 <= late.latency < 0.2
    t0 = time.perf_counter()
    on_time = _paced(call, t0 + 0.03)
    assert time.perf_counter() - t0 >= 0.04 and on_time.latency < 0.03
    assert _paced(call, None).latency == 0.01
