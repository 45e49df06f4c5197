"""Prometheus metrics of one service, on its own registry (so tests can run several)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu, open fds
        PlatformCollector(registry=r)
        self.requests = Counter("greenlight_requests", "Prediction requests by variant and HTTP "
                                "status.", ["variant", "status"], registry=r)
        self.errors = Counter("greenlight_errors", "Failed requests by kind.", ["kind"],
                              registry=r)
        self.predictions = Counter("greenlight_predictions", "Scored records.",
                                   ["variant", "needs_review"], registry=r)
        self.latency = Histogram(
            "greenlight_request_latency_seconds", "Time to validate and score a request.",
            ["variant"], registry=r,
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
        self.version = Gauge("greenlight_model_version", "Version each alias serves.",
                             ["alias"], registry=r)
        self.swaps = Counter("greenlight_model_swaps", "Hot swaps by alias.", ["alias"],
                             registry=r)
        # The shadow variant answers nobody: its own families, so the request and prediction
        # counts above stay the ones callers got, and a dashboard sums them without doubling.
        self.shadow_scored = Counter("greenlight_shadow_scored", "Requests the shadow "
                                     "variant (@challenger) scored, by outcome (ok or error).",
                                     ["outcome"], registry=r)
        self.shadow_predictions = Counter("greenlight_shadow_predictions", "Records the shadow "
                                          "variant scored.", ["needs_review"], registry=r)
        self.shadow_latency = Histogram(
            "greenlight_shadow_latency_seconds", "Time the shadow variant took to score a "
            "request (after the caller's answer was sent).", registry=r,
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
        self.canary = Gauge("greenlight_canary_fraction", "Share of keys the challenger "
                            "serves.", registry=r)

    def shadowed(self, seconds: float, outputs: list[dict] | None) -> None:
        """One shadow scoring: its time, its outcome and (when it answered) its records."""
        self.shadow_latency.observe(seconds)
        self.shadow_scored.labels("ok" if outputs is not None else "error").inc()
        review = sum(1 for out in outputs or [] if out.get("needs_review"))
        for flag, count in (("true", review), ("false", len(outputs or []) - review)):
            if count:
                self.shadow_predictions.labels(flag).inc(count)

    def swapped(self, alias: str, version: int | None) -> None:
        """A hot swap; an alias that is gone stops reporting a version."""
        if version is None:
            try:
                self.version.remove(alias)
            except KeyError:  # it never reported one
                pass
        else:
            self.version.labels(alias).set(version)
        self.swaps.labels(alias).inc()
