"""The server's webhook thread: tells partners of alerts as their areas grow, and sends the
outbox (matcher/store/partners.py) to their webhooks, signed.

Each round: alerts whose area reached a new step get their `widened` rows (each alert in its
own transaction, under the alert change lock, so rows of one alert are numbered in the order
of its events); then each partner's oldest pending row, when due, is leased and POSTed from a
pool of threads, one row per partner at a time: a partner's events arrive in order, and a slow
or unreachable partner holds up only its own. A 2xx marks the row delivered (never sent again);
anything else, a timeout or a refused connection schedules the next attempt (backoff doubling
from `partner_retry_first_s` to `partner_retry_max_s`, with jitter) until the event is
`partner_give_up_hours` old. Rows survive restarts and crashes: a process killed mid-send
leaves a lease that runs out, and the row is sent again (the partner drops the repeat by its
event id; only an acknowledged row is never sent again).

The signature: `X-Matcher-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>"
keyed with the partner's secret>`, made at each attempt (README.md shows the check).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import logging
import random
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from matcher.service.partner_events import tell_widened
from matcher.service.runtime import Runtime
from matcher.store import AuditEntry, record, session_scope
from matcher.store.alerts import Alert, next_seq, told_step
from matcher.store.partners import (
    claim,
    due_widenings,
    live_partners,
    queue_heads,
    record_attempt,
)
from matcher.vocabulary import SYSTEM, AlertStatus

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Matcher-Signature"
EVENT_HEADER = "X-Matcher-Event-Id"
ANSWER_READ_LIMIT = 64 * 1024  # bytes of a partner's answer read (and dropped)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body,
                      hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def tell_widenings(matcher: Runtime) -> int:
    """Rows for every alert whose area grew to a step the partners were not told of; returns
    how many alerts. Nothing is done while no partner is registered: a partner registered
    later hears of each alert's area as it is then."""
    now = matcher.clock()
    with matcher.sessions() as session:
        if not live_partners(session):
            return 0
        due = [alert.id for alert in due_widenings(session, now)]
    for alert_id in due:
        with session_scope(matcher.sessions) as session:
            next_seq(session)  # the alert change lock: this alert's rows in event order
            alert = session.get_one(Alert, alert_id, populate_existing=True)
            if (alert.status is not AlertStatus.ACTIVE or alert.next_step_at is None
                    or alert.next_step_at > now):
                continue  # resolved, or told by another process meanwhile
            told = tell_widened(session, alert, now)
            told_step(session, alert, now)
            if told:
                record(session, SYSTEM, AuditEntry("notify", "alert", alert_id, {
                    "case_id": alert.case_id, "kind": "widened", "partners_told": told}))
    return len(due)


@dataclass(frozen=True)
class Outgoing:
    """A leased row, with what sending it takes."""

    id: int
    partner_id: int
    url: str
    secret: str
    event_id: str
    body: bytes
    attempts: int  # before this one
    created_at: dt.datetime


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer other than 2xx: the body goes to the URL registered, only."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# No proxy from the environment either: the partner's URL is the whole route.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def post(outgoing: Outgoing, timeout_s: float, now: dt.datetime) -> tuple[int | None, str | None]:
    """One attempt: (HTTP status or None, error or None when acknowledged)."""
    request = urllib.request.Request(outgoing.url, data=outgoing.body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "matcher-webhooks/1",
        EVENT_HEADER: outgoing.event_id,
        SIGNATURE_HEADER: sign(outgoing.secret, int(now.timestamp()), outgoing.body)})
    try:
        with _OPENER.open(request, timeout=timeout_s) as answer:
            answer.read(ANSWER_READ_LIMIT)
            status = int(answer.status)
    except urllib.error.HTTPError as error:  # an answer, not 2xx (a 3xx too: not followed)
        error.close()
        return int(error.code), f"answered {error.code}"
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        return None, f"{type(error).__name__}: {getattr(error, 'reason', error)}"
    if 200 <= status < 300:
        return status, None
    return status, f"answered {status}"


def backoff_s(attempts: int, first_s: float, max_s: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling, capped, with a
    tenth of jitter (partners back after an outage are not hit by every sender at once)."""
    base = min(max_s, first_s * 2 ** min(attempts - 1, 60))
    return base * random.uniform(0.9, 1.1)


class Dispatcher:
    """Runs `tell_widenings` and sends the outbox every `partner_poll_s` until stopped; `wake`
    makes it look at once (an event was just enqueued)."""

    def __init__(self, matcher: Runtime) -> None:
        self.matcher = matcher
        settings = matcher.settings
        self._pool = ThreadPoolExecutor(max_workers=settings.partner_workers,
                                        thread_name_prefix="webhook")
        self._busy: set[int] = set()  # partners with a row in flight from this process
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Sends nothing more; waits for the attempts in flight (at most the timeout)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                tell_widenings(self.matcher)
                self.send_due()
            except Exception:  # a store hiccup must not end the thread: next round retries
                log.exception("webhook round failed; the next one retries")
            self._wake.wait(self.matcher.settings.partner_poll_s)
            self._wake.clear()

    def send_due(self) -> int:
        """Leases each idle partner's due head row and hands it to the pool; returns how many."""
        settings = self.matcher.settings
        now = self.matcher.clock()
        lease = now + dt.timedelta(seconds=2 * settings.partner_timeout_s + 5)
        started = 0
        with session_scope(self.matcher.sessions) as session:
            partners = {p.id: p for p in live_partners(session)}
            for head in queue_heads(session, now):
                partner = partners.get(head.partner_id)
                with self._busy_lock:
                    if partner is None or partner.id in self._busy:
                        continue
                outgoing = Outgoing(head.id, partner.id, partner.url, partner.secret,
                                    head.event_id, head.body.encode(), head.attempts,
                                    head.created_at)
                if not claim(session, head.id, now, lease):
                    continue  # another process sends it
                session.commit()  # the lease holds before the first byte goes out
                with self._busy_lock:
                    self._busy.add(partner.id)
                self._pool.submit(self._send, outgoing)
                started += 1
        return started

    def _send(self, outgoing: Outgoing) -> None:
        settings = self.matcher.settings
        try:
            now = self.matcher.clock()
            status, error = post(outgoing, settings.partner_timeout_s, now)
            done = self.matcher.clock()
            next_at = None
            if error is not None:
                age = done - outgoing.created_at
                if age < dt.timedelta(hours=settings.partner_give_up_hours):
                    next_at = done + dt.timedelta(seconds=backoff_s(
                        outgoing.attempts + 1, settings.partner_retry_first_s,
                        settings.partner_retry_max_s))
                    log.info("partner %d: event %s not delivered (%s); again at %s",
                             outgoing.partner_id, outgoing.event_id, error, next_at)
                else:
                    log.warning("partner %d: event %s given up after %d attempts (%s)",
                                outgoing.partner_id, outgoing.event_id,
                                outgoing.attempts + 1, error)
            with session_scope(self.matcher.sessions) as session:
                record_attempt(session, outgoing.id, done, status, error, next_at)
        except Exception:
            log.exception("partner %d: event %s: the attempt could not be recorded; its "
                          "lease runs out and it is sent again", outgoing.partner_id,
                          outgoing.event_id)
        finally:
            with self._busy_lock:
                self._busy.discard(outgoing.partner_id)
            self._wake.set()  # its next row may be due now
