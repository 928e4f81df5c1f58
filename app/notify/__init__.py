"""Notifications: what the autopilot did and, when set, what a person did, told to the
configured webhooks.

`messages` holds the `Notification` value and the bodies (generic JSON, Slack), `webhooks`
the transport: background posting with retries and the `webhook_deliveries` records.
Nothing here loads pandas: a rollback from the terminal notifies without paying for it.
"""

from app.notify.messages import (
    Notification,
    autopilot_notification,
    gate_in_words,
    json_body,
    link_to_flag,
    manual_notifications,
    notification_from_json,
    slack_body,
    webhook_body,
)
from app.notify.webhooks import (
    Delivery,
    DeliveryStatus,
    HandingOverNotifier,
    Notifier,
    NullNotifier,
    Webhook,
    WebhookNotifier,
    deliveries_of,
    failed_deliveries,
    open_notifier,
)

__all__ = [
    "Delivery",
    "DeliveryStatus",
    "HandingOverNotifier",
    "Notification",
    "Notifier",
    "NullNotifier",
    "Webhook",
    "WebhookNotifier",
    "autopilot_notification",
    "deliveries_of",
    "failed_deliveries",
    "gate_in_words",
    "json_body",
    "link_to_flag",
    "manual_notifications",
    "notification_from_json",
    "open_notifier",
    "slack_body",
    "webhook_body",
]
