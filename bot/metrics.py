"""/metrics: the bot's counters and gauges in Prometheus's text format, behind an API key.

Most figures are counters the parts already keep for `Bot.stats()`: a collector reads them when
Prometheus scrapes, so the hot path pays nothing for being watched. Only what no part counted
yet (requests by route, the intake time) is measured here. Every bot has its own registry, so
several bots in one process (the tests) never share a figure.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from bot.api.errors import ApiError
from bot.api.guard import ApiGuard
from bot.api.keys import Scope

INTAKE_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
"""Seconds from a notification off RingCentral's socket until every consumer was told."""
UNMATCHED: Final = "unmatched"
"""The route label of a request no route took (a 404), so scanners cannot grow the label set."""


@dataclass(frozen=True, slots=True)
class Reading:
    """Every figure the collector reports, read from the parts at one moment (see bot/app.py)."""

    presence_events: int
    malformed_events: int
    transitions: int
    status_writes: Mapping[str, int]
    """Outcomes of the status writer's turns: ok, rate_limited, retried, gave_up, skipped, …"""
    status_write_attempts: int
    rate_limited: Mapping[str, int]
    """429s answered to us, by platform (slack, ringcentral)."""
    write_queue: int
    budget_used: int
    budget_limit: int
    dms: Mapping[str, int]
    """DM attempts by outcome: sent, retried (not now), dropped (never)."""
    watches_fired: int
    commands: Mapping[str, int]
    ws_connections: int
    ws_recoveries: int
    ws_failed_recoveries: int
    rc_logins: int
    rc_sessions_resumed: int
    rc_token_refreshes: int
    rc_requests: Mapping[str, int]
    """RingCentral requests by rate group (light, medium, heavy, auth)."""
    streams_open: int
    gate_waiting: int
    webhooks: Mapping[str, int]
    """Webhook deliveries by outcome: delivered, failed_attempt, gave_up, disabled."""
    extensions_known: int
    people_linked: int
    ready: bool
    intake_backlog: int = 0
    """Presence events read off the socket, waiting for the hub."""
    intake_folded: int = 0
    """Events folded into a later one of the same extension while the hub was behind."""
    leading: bool = True
    """This replica leads (always, alone on SQLite)."""
    epoch: int = 0
    """The leader lease's epoch this replica last led under (0: never, or alone on SQLite)."""


def _counter(name: str, doc: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled_counter(
    name: str, doc: str, label: str, values: Mapping[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class _StateCollector(Collector):
    """Turns a `Reading` into metric families at scrape time."""

    def __init__(self, read: Callable[[], Reading]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        r = self._read()
        yield _counter(
            "rcstatus_presence_events", "RingCentral notifications received", r.presence_events
        )
        yield _counter(
            "rcstatus_presence_events_malformed",
            "RingCentral notifications skipped as malformed",
            r.malformed_events,
        )
        yield _counter(
            "rcstatus_presence_transitions",
            "Extensions whose availability class changed",
            r.transitions,
        )
        yield _labelled_counter(
            "rcstatus_status_writes",
            "The status writer's turns, by outcome",
            "outcome",
            r.status_writes,
        )
        yield _counter(
            "rcstatus_status_write_attempts",
            "users.profile.set calls started, whatever their outcome",
            r.status_write_attempts,
        )
        yield _labelled_counter(
            "rcstatus_rate_limited", "429 answers received, by platform", "platform", r.rate_limited
        )
        yield _gauge(
            "rcstatus_status_write_queue", "People with a status write still to make", r.write_queue
        )
        yield _gauge(
            "rcstatus_status_budget_used",
            "Status writes sent within Slack's current rate window",
            r.budget_used,
        )
        yield _gauge(
            "rcstatus_status_budget_limit",
            "Status writes Slack allows per rate window (per workspace)",
            r.budget_limit,
        )
        yield _labelled_counter(
            "rcstatus_dms", "Direct-message attempts, by outcome", "outcome", r.dms
        )
        yield _counter(
            "rcstatus_watches_fired", "'Free now' DMs delivered for watches", r.watches_fired
        )
        yield _labelled_counter(
            "rcstatus_commands", "/rcstatus commands, by subcommand", "subcommand", r.commands
        )
        yield _counter(
            "rcstatus_ringcentral_ws_connections",
            "RingCentral WebSocket connections opened (each start or reconnect)",
            r.ws_connections,
        )
        yield _counter(
            "rcstatus_ringcentral_ws_recoveries",
            "RingCentral WebSocket sessions recovered without missing events",
            r.ws_recoveries,
        )
        yield _counter(
            "rcstatus_ringcentral_ws_failed_recoveries",
            "RingCentral WebSocket recoveries that failed (a snapshot follows)",
            r.ws_failed_recoveries,
        )
        yield _counter("rcstatus_ringcentral_logins", "RingCentral JWT logins", r.rc_logins)
        yield _counter(
            "rcstatus_ringcentral_sessions_resumed",
            "Starts that took up RingCentral's stored session instead of logging in",
            r.rc_sessions_resumed,
        )
        yield _counter(
            "rcstatus_ringcentral_token_refreshes",
            "RingCentral access tokens refreshed",
            r.rc_token_refreshes,
        )
        yield _labelled_counter(
            "rcstatus_ringcentral_requests",
            "RingCentral requests sent, by rate group",
            "group",
            r.rc_requests,
        )
        yield _gauge("rcstatus_api_streams_open", "Event streams open now", r.streams_open)
        yield _gauge(
            "rcstatus_api_gate_waiting", "API requests held at the gate now", r.gate_waiting
        )
        yield _labelled_counter(
            "rcstatus_webhook_deliveries", "Webhook delivery attempts, by outcome", "outcome",
            r.webhooks,
        )  # fmt: skip
        yield _gauge(
            "rcstatus_extensions_known", "RingCentral extensions known", r.extensions_known
        )
        yield _gauge("rcstatus_people_linked", "People linked to an extension", r.people_linked)
        yield _gauge(
            "rcstatus_presence_intake_backlog",
            "Presence events read off the WebSocket and waiting for the hub",
            r.intake_backlog,
        )
        yield _counter(
            "rcstatus_presence_events_folded",
            "Presence events folded into a later one of the same extension (intake behind)",
            r.intake_folded,
        )
        yield _gauge(
            "rcstatus_ready",
            "1 once started with RingCentral's WebSocket connected (/readyz also checks Slack and "
            "the database)",
            1.0 if r.ready else 0.0,
        )
        yield _gauge(
            "rcstatus_leader",
            "1 while this replica leads (holds the lease, talks to RingCentral, writes to Slack)",
            1.0 if r.leading else 0.0,
        )
        yield _gauge(
            "rcstatus_leader_epoch",
            "The leader lease's epoch this replica last led under; a rise means a takeover",
            float(r.epoch),
        )


@dataclass(slots=True)
class CommandTally:
    """Counts /rcstatus subcommands; the names come from the parser's classes, so it is bounded."""

    counts: Tally[str] = field(default_factory=Tally)

    def count(self, subcommand: str) -> None:
        self.counts[subcommand] += 1


class Metrics:
    """One bot's registry, the figures measured here, and the guarded /metrics endpoint."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.commands = CommandTally()
        self.intake = Histogram(
            "rcstatus_presence_intake_seconds",
            "From a RingCentral notification off the socket until every consumer was told",
            buckets=INTAKE_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "rcstatus_http_requests",
            "Requests to the bot's HTTP endpoints (the API, webhooks' routes, OAuth, probes)",
            ["route", "status"],
            registry=self.registry,
        )

    def watch(self, read: Callable[[], Reading]) -> None:
        """Report the parts' own counters, read at each scrape."""
        self.registry.register(_StateCollector(read))

    def counting(self) -> Middleware:
        """Middleware: each request counted by its route's pattern (never its path) and status."""

        @web.middleware
        async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
            route = request.match_info.route.resource
            label = route.canonical if route is not None else UNMATCHED
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                self.http_requests.labels(label, str(exc.status)).inc()
                raise
            except BaseException:
                self.http_requests.labels(label, "500").inc()
                raise
            self.http_requests.labels(label, str(response.status)).inc()
            return response

        return count_requests

    def route(self, guard: ApiGuard) -> web.RouteDef:
        """GET /metrics for a key with the metrics:read scope; never open to anyone else."""

        async def scrape(request: web.Request) -> web.Response:
            try:
                await guard.authorize(request, Scope.METRICS_READ)
            except ApiError as exc:
                return exc.response()
            body = generate_latest(self.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        return web.get("/metrics", scrape)
