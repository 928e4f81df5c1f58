"""Webhook delivery of notifications (what the autopilot did and, when set, what a person
did; the bodies are `app.notify.messages`).

`notify()` only queues: one background daemon thread per webhook posts the body with
`requests`, retries a non-2xx answer or a connection error after each `backoff` delay,
and records every delivery as a `webhook_deliveries` row (pending → delivered, or
retrying → … → failed) when the metrics database answers. Nothing here ever waits for a
webhook in the caller's thread, and nothing raises into it.

A short-lived process (a command from the terminal) must not wait for webhooks when it
exits either: its `HandingOverNotifier` only writes each delivery as a `handed_over` row
holding the notification, and the autopilot's leader sends those after its next tick
(`WebhookNotifier.deliver_handed_over`). Without the database, the delivery is logged as
not sent.

A webhook's URL is a secret (Slack's carries its token in the path): it is in no row,
log line, error text or page. A failed attempt is recorded as the exception's class
(`ConnectionError`, `ReadTimeout`) or `HTTP 500`, never as `requests`' message, which
quotes the URL.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session

from app.metrics_db.schema import WebhookDeliveryRow
from app.notify.messages import (
    Notification,
    delivery_summary,
    json_body,
    notification_from_json,
    webhook_body,
)
from app.settings import Settings, WebhookKind

if TYPE_CHECKING:
    import requests

__all__ = [
    "Delivery",
    "DeliveryStatus",
    "HandingOverNotifier",
    "Notifier",
    "NullNotifier",
    "Webhook",
    "WebhookNotifier",
    "deliveries_of",
    "failed_deliveries",
    "open_notifier",
]

log = logging.getLogger(__name__)

#: how long a process exiting waits for deliveries still under way (then records them failed)
_EXIT_WAIT_SECONDS = 5.0
#: a handed-over delivery claimed but not written for this long was abandoned by its
#: claimer (which writes the row at every attempt, at most ~21 s apart): claimable again
_ABANDONED_AFTER = timedelta(minutes=10)
#: deliveries queued and not settled, per notifier; more are dropped (and logged)
_MAX_UNSETTLED = 1000


#: hears each delivery attempt's outcome: (webhook name, delivered|retrying|failed|dropped)
DeliveryListener = Callable[[str, str], None]


class Notifier(Protocol):
    def notify(self, notification: Notification) -> None:
        """Queue `notification` for every webhook; never blocks, never raises."""

    def watch(self, listener: DeliveryListener) -> None:
        """Tell `listener` the outcome of every delivery attempt from now on."""

    def deliver_handed_over(self, limit: int = 100) -> int:
        """Take the deliveries other processes handed over and send them; how many."""


@dataclass(frozen=True)
class Webhook:
    """A configured webhook; its `url` is a secret, left out of `repr`."""

    name: str
    kind: WebhookKind
    url: str = field(repr=False)


class DeliveryStatus(StrEnum):
    HANDED_OVER = "handed_over"  # kept for the autopilot to send (`HandingOverNotifier`)
    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    """One notification to one webhook and what became of it (a `webhook_deliveries` row)."""

    id: int
    at: datetime
    webhook: str
    event: str
    flag: str
    environment: str
    summary: str
    status: DeliveryStatus
    attempts: int
    last_error: str
    updated_at: datetime


# -- delivery -------------------------------------------------------------------------------


class NullNotifier:
    """No webhook configured: nothing is sent or recorded."""

    def notify(self, notification: Notification) -> None:
        return None

    def watch(self, listener: DeliveryListener) -> None:
        return None

    def deliver_handed_over(self, limit: int = 100) -> int:
        return 0

    def flush(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        return None


class HandingOverNotifier(NullNotifier):
    """For a process that must not wait for webhooks (a command from the terminal): each
    delivery becomes a `handed_over` row holding the notification, written at once; the
    autopilot's leader sends it after its next tick. Without the database the delivery
    is logged as not sent (never silently lost). It never posts anything itself."""

    def __init__(self, webhooks: Sequence[Webhook], engine: Engine | None) -> None:
        self._webhooks = tuple(webhooks)
        self._engine = engine

    def notify(self, notification: Notification) -> None:
        try:
            self._hand_over(notification)
        except Exception as failure:
            log.warning(
                "%s of %s not sent to %s: the metrics database did not keep it (%s)",
                notification.event,
                notification.flag,
                ", ".join(w.name for w in self._webhooks),
                type(failure).__name__,
                extra=_fields(notification),
            )

    def _hand_over(self, notification: Notification) -> None:
        if self._engine is None:
            raise ConnectionError("metrics database unavailable")
        now = datetime.now(UTC)
        n = notification
        rows = [
            {
                "at": now,
                "webhook": webhook.name,
                "event": n.event[:64],
                "flag": n.flag[:200],
                "environment": n.environment[:200],
                "summary": delivery_summary(n),
                "status": str(DeliveryStatus.HANDED_OVER),
                "attempts": 0,
                "last_error": "",
                "updated_at": now,
                "notification": json.loads(json.dumps(json_body(n), default=str)),
            }
            for webhook in self._webhooks
        ]
        with self._engine.begin() as connection:
            connection.execute(insert(WebhookDeliveryRow), rows)
        log.info(
            "%s of %s handed over to the autopilot for %s",
            n.event,
            n.flag,
            ", ".join(w.name for w in self._webhooks),
            extra=_fields(n),
        )


def _fields(notification: Notification) -> dict[str, str]:
    """The structured fields of a log line about `notification` (`app.logs`)."""
    return {
        "flag": notification.flag,
        "environment": notification.environment,
        "actor": notification.actor,
    }


@dataclass
class _Job:
    webhook: Webhook
    notification: Notification
    queued_at: datetime
    attempts: int = 0
    row_id: int | None = None


class WebhookNotifier:
    """Posts every notification to every webhook from background threads (one per
    webhook, so a hanging one delays no other), retrying after each `backoff` delay; a
    delivery still failing after the last retry is recorded `failed`. `engine` None: no
    rows. At interpreter exit, deliveries still under way get up to 5 s, then are
    recorded failed."""

    def __init__(
        self,
        webhooks: Sequence[Webhook],
        engine: Engine | None,
        *,
        backoff: Sequence[float] = (1, 2, 4, 8, 16),
        timeout: float = 5.0,
    ) -> None:
        self._webhooks = tuple(webhooks)
        self._engine = engine
        self._backoff = tuple(float(delay) for delay in backoff)
        self._timeout = timeout
        self._changed = threading.Condition()
        self._due: dict[str, list[tuple[float, int, _Job]]] = {w.name: [] for w in webhooks}
        self._order = itertools.count()
        self._unsettled = 0
        self._threads: dict[str, threading.Thread] = {}
        self._closed = False
        self._listeners: list[DeliveryListener] = []
        atexit.register(self._at_exit)

    def watch(self, listener: DeliveryListener) -> None:
        """Tell `listener` (webhook name, outcome) after every attempt and every drop."""
        self._listeners.append(listener)

    def _tell(self, webhook: str, outcome: str) -> None:
        for listener in self._listeners:
            try:
                listener(webhook, outcome)
            except Exception:  # a counter must never stop a delivery
                log.exception("delivery listener failed")

    def deliver_handed_over(self, limit: int = 100) -> int:
        """Claim up to `limit` deliveries other processes handed over (oldest first), each
        by a conditional update, so that two callers never both send one, and queue them
        as this notifier's own; so too one a claimer left pending or retrying untouched
        for `_ABANDONED_AFTER` (it died: a live one writes the row at every attempt). A
        delivery to a webhook this process does not know is recorded failed, saying so.
        The number queued; 0 when the database does not answer."""
        if self._engine is None or self._closed:
            return 0
        handed = str(DeliveryStatus.HANDED_OVER)
        stale = datetime.now(UTC) - _ABANDONED_AFTER
        under_way = [str(DeliveryStatus.PENDING), str(DeliveryStatus.RETRYING)]
        claimable = (WebhookDeliveryRow.status == handed) | (
            WebhookDeliveryRow.status.in_(under_way) & (WebhookDeliveryRow.updated_at < stale)
        )
        query = (
            select(
                WebhookDeliveryRow.id,
                WebhookDeliveryRow.at,
                WebhookDeliveryRow.webhook,
                WebhookDeliveryRow.notification,
            )
            .where(WebhookDeliveryRow.notification.is_not(None), claimable)
            .order_by(WebhookDeliveryRow.id)
            .limit(limit)
        )
        known = {w.name: w for w in self._webhooks}
        taken = 0
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query).all()
            for row_id, at, name, document in rows:
                webhook, notification, error = known.get(name), None, ""
                try:
                    notification = notification_from_json(document or {})
                except (KeyError, ValueError, TypeError):
                    error = "not sent: the notification handed over cannot be read"
                if webhook is None:
                    error = "not sent: the autopilot has no webhook of this name"
                claimed = DeliveryStatus.FAILED if error else DeliveryStatus.PENDING
                with self._engine.begin() as connection:
                    done = connection.execute(
                        update(WebhookDeliveryRow)
                        .where(WebhookDeliveryRow.id == row_id, claimable)
                        .values(status=str(claimed), last_error=error, updated_at=datetime.now(UTC))
                    )
                if done.rowcount != 1:  # another process took it
                    continue
                if webhook is None or notification is None:
                    log.warning("webhook %s: a handed-over delivery %s", name, error)
                    self._tell(name, str(DeliveryStatus.FAILED))
                    continue
                job = _Job(webhook, notification, at, row_id=row_id)
                with self._changed:
                    heapq.heappush(self._due[name], (time.monotonic(), next(self._order), job))
                    self._unsettled += 1
                    self._start(webhook)
                    self._changed.notify_all()
                taken += 1
        except Exception as failure:  # the database went away: the rest wait for next time
            log.warning("handed-over deliveries not taken (%s)", type(failure).__name__)
        return taken

    def notify(self, notification: Notification) -> None:
        """Queue `notification` for each webhook and return at once."""
        try:
            queued_at = datetime.now(UTC)
            with self._changed:
                if self._closed:
                    log.warning(
                        "notifier closed: %s of %s not sent", notification.event, notification.flag
                    )
                    return
                for webhook in self._webhooks:
                    if self._unsettled >= _MAX_UNSETTLED:
                        self._tell(webhook.name, "dropped")
                        log.warning(
                            "webhook %s: %d deliveries queued, %s of %s dropped",
                            webhook.name,
                            self._unsettled,
                            notification.event,
                            notification.flag,
                        )
                        continue
                    job = _Job(webhook, notification, queued_at)
                    heapq.heappush(
                        self._due[webhook.name], (time.monotonic(), next(self._order), job)
                    )
                    self._unsettled += 1
                    self._start(webhook)
                self._changed.notify_all()
        except Exception as error:
            log.warning("notification not queued (%s)", type(error).__name__)

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until every queued delivery is settled (delivered
        or failed, its row written); True when all are."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._unsettled:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def close(self) -> None:
        """Stop: an attempt under way finishes; deliveries still waiting for a retry are
        recorded failed. Later notifications are dropped."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            threads = list(self._threads.values())
        deadline = time.monotonic() + self._timeout + 1
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        atexit.unregister(self._at_exit)

    def _at_exit(self) -> None:
        self.flush(_EXIT_WAIT_SECONDS)
        self.close()

    def _start(self, webhook: Webhook) -> None:
        """The webhook's thread, started on its first delivery (under the lock)."""
        if webhook.name not in self._threads:
            thread = threading.Thread(
                target=self._deliver_forever,
                args=(webhook,),
                name=f"webhook-{webhook.name}",
                daemon=True,
            )
            self._threads[webhook.name] = thread
            thread.start()

    def _deliver_forever(self, webhook: Webhook) -> None:
        import requests

        session = requests.Session()
        while True:
            job = self._next_job(webhook)
            if job is None:
                break
            self._attempt(session, job)
        for _, _, left in self._take_all(webhook):
            self._settle(left, DeliveryStatus.FAILED, "not delivered: the notifier stopped first")
            self._tell(webhook.name, str(DeliveryStatus.FAILED))
        session.close()

    def _next_job(self, webhook: Webhook) -> _Job | None:
        """The next delivery due, waiting for it; None once closed."""
        due = self._due[webhook.name]
        with self._changed:
            while not self._closed:
                now = time.monotonic()
                if due and due[0][0] <= now:
                    return heapq.heappop(due)[2]
                self._changed.wait(due[0][0] - now if due else None)
            return None

    def _take_all(self, webhook: Webhook) -> list[tuple[float, int, _Job]]:
        with self._changed:
            left, self._due[webhook.name] = self._due[webhook.name], []
            return left

    def _attempt(self, session: requests.Session, job: _Job) -> None:
        try:
            if job.attempts == 0:
                self._record(job, DeliveryStatus.PENDING, "")
            job.attempts += 1
            error = _post(session, job.webhook, job.notification, self._timeout)
        except Exception as unexpected:
            error = type(unexpected).__name__
            job.attempts = max(job.attempts, 1)
        if error is None:
            self._settle(job, DeliveryStatus.DELIVERED, "")
            self._tell(job.webhook.name, str(DeliveryStatus.DELIVERED))
        elif job.attempts > len(self._backoff):
            log.warning(
                "webhook %s: %s of %s not delivered after %d attempts (%s)",
                job.webhook.name,
                job.notification.event,
                job.notification.flag,
                job.attempts,
                error,
            )
            self._settle(job, DeliveryStatus.FAILED, error)
            self._tell(job.webhook.name, str(DeliveryStatus.FAILED))
        else:
            self._record(job, DeliveryStatus.RETRYING, error)
            self._tell(job.webhook.name, str(DeliveryStatus.RETRYING))
            due = time.monotonic() + self._backoff[job.attempts - 1]
            with self._changed:
                heapq.heappush(self._due[job.webhook.name], (due, next(self._order), job))
                self._changed.notify_all()

    def _settle(self, job: _Job, status: DeliveryStatus, error: str) -> None:
        """Record the final `status`, then count the delivery settled (so that `flush`
        returning True means the rows are written)."""
        try:
            self._record(job, status, error)
        finally:
            with self._changed:
                self._unsettled -= 1
                self._changed.notify_all()

    def _record(self, job: _Job, status: DeliveryStatus, error: str) -> None:
        """Write the delivery's row (inserting it if an earlier write failed); a database
        error is logged by its class and never stops the delivery."""
        if self._engine is None:
            return
        now = datetime.now(UTC)
        values = {
            "status": str(status),
            "attempts": job.attempts,
            "last_error": error,
            "updated_at": now,
        }
        try:
            with self._engine.begin() as connection:
                if job.row_id is None:
                    n = job.notification
                    job.row_id = connection.execute(
                        insert(WebhookDeliveryRow)
                        .values(
                            at=job.queued_at,
                            webhook=job.webhook.name,
                            event=n.event[:64],
                            flag=n.flag[:200],
                            environment=n.environment[:200],
                            summary=delivery_summary(n),
                            **values,
                        )
                        .returning(WebhookDeliveryRow.id)
                    ).scalar_one()
                else:
                    connection.execute(
                        update(WebhookDeliveryRow)
                        .where(WebhookDeliveryRow.id == job.row_id)
                        .values(**values)
                    )
        except Exception as failure:
            log.warning(
                "webhook %s: delivery of %s not recorded (%s)",
                job.webhook.name,
                job.notification.event,
                type(failure).__name__,
            )


def _post(
    session: requests.Session, webhook: Webhook, notification: Notification, timeout: float
) -> str | None:
    """None when the webhook answered 2xx, else what went wrong without the URL:
    'HTTP 500', 'ConnectionError', 'ReadTimeout'."""
    import requests

    body = json.dumps(webhook_body(webhook.kind, notification), default=str).encode()
    try:
        response = session.post(
            webhook.url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "rollout-dashboard"},
            timeout=timeout,
            allow_redirects=False,  # a redirect is a misconfigured URL: say so, do not follow
        )
    except requests.RequestException as error:  # its message quotes the URL: class only
        return type(error).__name__
    with response:
        return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"


# -- reading, wiring -------------------------------------------------------------------------


def failed_deliveries(
    engine: Engine | None, limit: int = 20, *, since: datetime | None = None
) -> list[Delivery]:
    """Deliveries that failed after every retry, newest first (at most `limit`, those
    queued at or after `since`); [] without a database or when it does not answer."""
    if engine is None:
        return []
    query = select(WebhookDeliveryRow).where(
        WebhookDeliveryRow.status == str(DeliveryStatus.FAILED)
    )
    if since is not None:
        query = query.where(WebhookDeliveryRow.at >= since)
    query = query.order_by(WebhookDeliveryRow.at.desc(), WebhookDeliveryRow.id.desc()).limit(limit)
    try:
        with Session(engine) as session:
            rows = session.scalars(query).all()
    except Exception as failure:
        log.warning("failed deliveries not read (%s)", type(failure).__name__)
        return []
    return [_delivery(row) for row in rows]


def deliveries_of(
    engine: Engine | None,
    environment: str,
    flag: str,
    event: str,
    since: datetime,
    until: datetime,
    limit: int = 20,
) -> list[Delivery]:
    """Every delivery of `event` about `flag` in `environment` queued between `since` and
    `until`, whatever became of it, oldest first; [] without a database or when it does
    not answer."""
    if engine is None:
        return []
    query = (
        select(WebhookDeliveryRow)
        .where(
            WebhookDeliveryRow.environment == environment,
            WebhookDeliveryRow.flag == flag,
            WebhookDeliveryRow.event == event,
            WebhookDeliveryRow.at >= since,
            WebhookDeliveryRow.at <= until,
        )
        .order_by(WebhookDeliveryRow.at, WebhookDeliveryRow.id)
        .limit(limit)
    )
    try:
        with Session(engine) as session:
            rows = session.scalars(query).all()
    except Exception as failure:
        log.warning("deliveries not read (%s)", type(failure).__name__)
        return []
    return [_delivery(row) for row in rows]


def _delivery(row: WebhookDeliveryRow) -> Delivery:
    return Delivery(
        id=row.id,
        at=row.at,
        webhook=row.webhook,
        event=row.event,
        flag=row.flag,
        environment=row.environment,
        summary=row.summary,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
        updated_at=row.updated_at,
    )


def open_notifier(
    settings: Settings, engine: Engine | None, *, hand_over: bool = False
) -> Notifier:
    """The webhooks `ROLLOUT_WEBHOOKS` names (settings checked each has a URL); a
    NullNotifier when it names none. `hand_over`: a process that must not wait for
    webhooks (a terminal command) hands its deliveries to the autopilot instead."""
    webhooks = [
        Webhook(name, kind, settings.webhook_urls[name].get_secret_value().strip())
        for name, kind in settings.webhooks.items()
    ]
    if not webhooks:
        return NullNotifier()
    return HandingOverNotifier(webhooks, engine) if hand_over else WebhookNotifier(webhooks, engine)
