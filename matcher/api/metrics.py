"""Operations: Prometheus metrics at `GET /metrics`, the access log and request ids.

Every app has its own registry (tests build many apps in one process). One ASGI middleware
times each request, labels it with the route *template* (`/v1/sightings/{sighting_id}`, never
the raw path, so ids neither explode the label set nor reach the logs), writes one access-log
line and echoes the request id. The upload routes add what only they know through `MetricsDep`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import uuid
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matcher import logs
from matcher.api.deps import Forbidden, MatcherDep, WorkerDep, _bearer, _header, current_key
from matcher.service import CasePhotoResult, SightingResult, matching_coverage
from matcher.service.partners import DeliveryState, delivery_states
from matcher.service.store_fit import erased_fitted_cases
from matcher.vocabulary import DeliveryStatus, Role

access_log = logging.getLogger("matcher.access")
log = logging.getLogger(__name__)

# Uploads take seconds on CPU (detection and embedding), reads milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
UNMATCHED = "unmatched"
# nginx's code for "client closed request": the client hung up before its request was read
# (a dropped mobile upload). Its own label: a client event must not raise the 5xx rate.
CLIENT_CLOSED = 499
# A proxy in front of the service connects from loopback too: a request it forwarded is not a
# local one, whatever its socket says.
_PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


class Metrics:
    """The app's registry and its series."""

    def __init__(self, app: FastAPI) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.latency = Histogram(
            "matcher_http_request_duration_seconds", "HTTP requests by route template.",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=reg)
        self.sightings = Counter(
            "matcher_sightings_uploaded", "Sightings stored.", registry=reg)
        self.faces = Counter(
            "matcher_faces_found", "Faces found in uploaded photos.", ["source", "fit"],
            registry=reg)
        self.candidates = Counter(
            "matcher_candidates_stored", "Candidate (sighting face, case) pairs stored.",
            registry=reg)
        self.case_photos = Counter(
            "matcher_case_photos_added", "Case photos stored.", registry=reg)
        for source in ("sighting", "case_photo"):
            for fit in ("true", "false"):
                self.faces.labels(source=source, fit=fit)
        # Read from the indexes at each scrape: what matching searches, to compare with the
        # store's faces for each (a face the store lost, or one it has and the index missed).
        for name, help_text, attribute in (
                ("matcher_index_case_faces", "Faces of active cases in the search index.",
                 "index"),
                ("matcher_index_sighting_faces", "Fit sighting faces in the sighting index "
                 "(retro-matching, sighting links).", "sighting_index")):
            gauge = Gauge(name, help_text, registry=reg)
            gauge.set_function(partial(_index_size, app, attribute))
        recall = Gauge(
            "matcher_index_recall_at_10", "Share of exact search's 10 best owners the index "
            "returns, as its self-check at build or load measured it (1: exact search).",
            ["index"], registry=reg)
        for label, attribute in (("cases", "index"), ("sightings", "sighting_index")):
            recall.labels(index=label).set_function(partial(_index_recall, app, attribute))
        # Read from the store at each scrape (off the event loop, in get_metrics_text).
        self.faces_without_vectors = Gauge(
            "matcher_faces_without_vectors", "Stored faces with no vector of the serving "
            "model: out of matching until a reindex embeds them.", registry=reg)
        self.unmatchable_cases = Gauge(
            "matcher_unmatchable_cases", "Active cases with faces, none of which has a vector "
            "of the serving model: they cannot be matched.", registry=reg)
        self.projection_erased_cases = Gauge(
            "matcher_projection_erased_cases", "Cases the serving model's projection was "
            "fitted on (fit-projection --from-store) that the store no longer holds: refit "
            "without them and reindex.", registry=reg)
        # Partners' webhooks, read from the store's outbox at each scrape (alert on lag).
        self.partner_deliveries = Gauge(
            "matcher_partner_deliveries", "Alert events for each live partner's webhook, by "
            "status (failed: given up).", ["partner", "status"], registry=reg)
        self.partner_lag = Gauge(
            "matcher_partner_delivery_lag_seconds", "Age of each live partner's oldest "
            "undelivered event (0: none waits).", ["partner"], registry=reg)
        self.partner_failing = Gauge(
            "matcher_partner_delivery_failed_attempts", "Failed attempts of each live "
            "partner's oldest undelivered event: above 0, its webhook is failing.", ["partner"],
            registry=reg)
        self._app = app
        self._templates: dict[int, str] = {}  # id of an included router's route: template

    def sighting_ingested(self, result: SightingResult) -> None:
        self.sightings.inc()
        self._count_faces("sighting", [face.fit for face in result.faces])
        self.candidates.inc(result.candidates)

    def case_photo_added(self, result: CasePhotoResult) -> None:
        self.case_photos.inc()
        self._count_faces("case_photo", [face.fit for face in result.faces])

    def _count_faces(self, source: str, fits: list[bool]) -> None:
        for fit in (True, False):
            count = sum(1 for f in fits if f is fit)
            if count:
                self.faces.labels(source=source, fit=str(fit).lower()).inc(count)

    def include(self, router: APIRouter, prefix: str = "") -> None:
        """Includes `router` in the app under `prefix`, and learns its routes' full templates:
        Starlette's `scope["route"]` is the router's own route, whose path lacks the prefix."""
        self._app.include_router(router, prefix=prefix)
        for route in router.routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                self._templates[id(route)] = prefix + path

    def route_template(self, scope: Scope) -> str:
        """The template of the route that served `scope` (also for a 405: the route whose path
        matched), or "unmatched"."""
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        template = self._templates.get(id(route))
        if template is not None:
            return template
        own = getattr(route, "path", None)  # a route of the app itself: its path is whole
        return own if isinstance(own, str) else UNMATCHED


def _index_size(app: FastAPI, attribute: str) -> float:
    """Faces in the matcher's index `attribute` ("index", "sighting_index"); NaN before the
    lifespan has opened it."""
    matcher = getattr(app.state, "matcher", None)
    return float(len(getattr(matcher, attribute))) if matcher is not None else float("nan")


def _index_recall(app: FastAPI, attribute: str) -> float:
    matcher = getattr(app.state, "matcher", None)
    if matcher is None:
        return float("nan")
    check = getattr(matcher, attribute).self_check
    return 1.0 if check is None else float(check.recall_at_10)


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is a plain token, else a fresh one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class ObserveRequests:
    """Times every HTTP request into the histogram and writes one access-log line for it.

    The line holds method, route template, status, milliseconds and the request id: no path,
    query string, header or body, so nothing a client typed reaches the logs.

    A client that hangs up while its body is read (starlette's ClientDisconnect) is counted
    and logged as 499 at info, and the exception ends here: nobody is left to answer, and
    further out it would be logged as an ERROR and counted as a 500.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        status = 500  # if the app raises before it answers, the server error middleware will

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append("X-Request-ID", rid)
            await send(message)

        token = logs.request_id.set(rid)
        start = time.perf_counter()
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            status = CLIENT_CLOSED
            log.info("the client closed the connection before its request was read (%s %s)",
                     method, self.metrics.route_template(scope))
        finally:
            seconds = time.perf_counter() - start
            route = self.metrics.route_template(scope)
            self.metrics.latency.labels(method=method, route=route,
                                        status=str(status)).observe(seconds)
            ms = round(seconds * 1000, 1)
            access_log.info("%s %s %d %.1f ms", method, route, status, ms, extra={
                "request_id": rid, "method": method, "route": route, "status": status,
                "ms": ms})
            logs.request_id.reset(token)


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # "testclient", a unix socket's name...
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def from_loopback(request: Request) -> bool:
    """A request from this machine that no proxy forwarded."""
    if any(name in request.headers for name in _PROXY_HEADERS):
        return False
    return is_loopback(request.client.host if request.client else None)


async def metrics_reader(
    request: Request, matcher: MatcherDep, worker: WorkerDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> None:
    """An admin key; or no key at all from loopback when `metrics_open_on_loopback` is on (a
    local Prometheus or curl). A key that is sent is always checked."""
    if (bearer is None and not header and matcher.settings.metrics_open_on_loopback
            and from_loopback(request)):
        return
    key = await current_key(matcher, worker, bearer, header)
    if key.role is not Role.ADMIN:
        raise Forbidden(f"a {key.role.value} key may not do this")


router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, dependencies=[Depends(metrics_reader)],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def get_metrics_text(metrics: MetricsDep, matcher: MatcherDep, worker: WorkerDep
                           ) -> Response:
    """Prometheus text format: requests, uploads, faces, candidates, indexed case faces,
    what the serving model cannot match, and erased cases its projection was fitted on."""
    blind = await worker(matching_coverage, matcher)
    metrics.faces_without_vectors.set(blind.faces_without_vectors)
    metrics.unmatchable_cases.set(len(blind.unmatchable_cases))
    metrics.projection_erased_cases.set(await worker(erased_fitted_cases, matcher))
    _set_partner_gauges(metrics, await worker(delivery_states, matcher))
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _set_partner_gauges(metrics: Metrics, states: list[DeliveryState]) -> None:
    for gauge in (metrics.partner_deliveries, metrics.partner_lag, metrics.partner_failing):
        gauge.clear()  # a removed partner's series go
    for state in states:
        partner = str(state.partner_id)
        for status in DeliveryStatus:
            metrics.partner_deliveries.labels(partner=partner, status=status.value).set(
                state.counts.get(status.value, 0))
        metrics.partner_lag.labels(partner=partner).set(state.lag_s)
        metrics.partner_failing.labels(partner=partner).set(state.head_attempts)


def install(app: FastAPI) -> Metrics:
    """Metrics, the access log and request ids for `app`, and its `GET /metrics`. The app's
    routers go in through the returned `Metrics.include`, which labels their requests."""
    metrics = Metrics(app)
    app.state.metrics = metrics
    app.add_middleware(ObserveRequests, metrics=metrics)
    metrics.include(router)
    return metrics
