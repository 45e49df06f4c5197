"""People told when it matters: Prefect automations that send through a notification block.

One automation per kind of news (an approval waiting, a rollback, a drift or decay alarm,
a quarantined batch), each triggered by greenlight's own event (core/events.py) and each
sending through one Prefect notification block. Nothing here sends HTTP: the Prefect
server's automation service renders the message and the block delivers it.

The block is a webhook (`CustomWebhookNotificationBlock`) posting JSON
`{"subject": ..., "body": ...}` to `GREENLIGHT_NOTIFY_URL`. Slack, Teams or email are the
same automations with another block: create it in the Prefect UI (or with its Python
class) and name it in `GREENLIGHT_NOTIFY_BLOCK` as `<block type slug>/<name>`, e.g.
`slack-webhook/ml-alerts`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from uuid import UUID

from core import events

NOTIFY_URL_ENV = "GREENLIGHT_NOTIFY_URL"
NOTIFY_BLOCK_ENV = "GREENLIGHT_NOTIFY_BLOCK"
WEBHOOK_BLOCK = "greenlight-notify"  # the webhook block's name, made from NOTIFY_URL_ENV
PREFIX = "greenlight: "  # our automations' names start with it; set-up replaces them all


@dataclass(frozen=True)
class Notice:
    """One kind of news: the event that raises it and the message, as Prefect templates."""

    name: str
    event: str
    subject: str
    body: str


_WHERE = ("dataset {{ event.payload.dataset }}, model version "
          "{{ event.payload.version }}\n{{ event.payload.link }}")
NOTICES = (
    Notice("approval waiting", events.APPROVAL_EVENT,
           "greenlight: {{ event.payload.dataset }} v{{ event.payload.version }} waits for "
           "approval", "A challenger passed the gate and waits for a person to approve or "
           "reject it in the Prefect UI (it times out as a rejection).\n" + _WHERE),
    Notice("rolled back", events.ROLLBACK_EVENT,
           "greenlight: {{ event.payload.dataset }} rolled back to "
           "v{{ event.payload.version }}",
           "The champion was rolled back: {{ event.payload.reason }}\n" + _WHERE),
    Notice("moved outside greenlight", events.EXTERNAL_EVENT,
           "greenlight: {{ event.payload.dataset }} @{{ event.payload.alias }} moved to "
           "v{{ event.payload.version }} outside greenlight",
           "{{ event.payload.reason }}\n" + _WHERE),
    Notice("drift", events.DRIFT_EVENT,
           "greenlight: drift on {{ event.payload.dataset }} in "
           "{{ (event.payload.files or event.payload.batch_ids) | join(', ') }}",
           "Drift alarms ({{ event.payload.kinds | join(', ') }}) on "
           "{{ (event.payload.files or event.payload.batch_ids) | join(', ') }}, against the "
           "champion v{{ event.payload.champion_version }}.\n" + _WHERE),
    Notice("decay", events.DECAY_EVENT,
           "greenlight: the champion of {{ event.payload.dataset }}, "
           "v{{ event.payload.champion_version }}, decayed",
           "The champion v{{ event.payload.champion_version }} fell on newly labelled rows "
           "of {{ (event.payload.files or event.payload.batch_ids) | join(', ') }}.\n"
           + _WHERE),
    Notice("quarantine", events.QUARANTINE_EVENT,
           "greenlight: a batch of {{ event.payload.dataset }} was quarantined",
           "{{ event.payload.file }} failed validation and was quarantined: "
           "{{ event.payload.reason }}\n" + _WHERE),
)


def configured() -> str | None:
    """Where notifications go, in words, or None when they are off (nothing is set)."""
    if block := os.environ.get(NOTIFY_BLOCK_ENV):
        return f"block {block}"
    return os.environ.get(NOTIFY_URL_ENV) or None


def _block_id() -> UUID:
    """The notification block to send through: the named one, else the webhook block made
    (or updated) from `GREENLIGHT_NOTIFY_URL`."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client

    if slug := os.environ.get(NOTIFY_BLOCK_ENV):
        type_slug, _, name = slug.partition("/")
        if not name:
            raise ValueError(f"{NOTIFY_BLOCK_ENV}={slug}: expected <block type slug>/<name>, "
                             "e.g. slack-webhook/ml-alerts")
        with get_client(sync_client=True) as client:
            return client.read_block_document_by_name(name, type_slug).id
    block = CustomWebhookNotificationBlock(
        name="greenlight", url=os.environ[NOTIFY_URL_ENV],
        json_data={"subject": "{{subject}}", "body": "{{body}}"})
    return block.save(WEBHOOK_BLOCK, overwrite=True)


def set_up() -> list[str]:
    """Create greenlight's automations on the server `PREFECT_API_URL` names, replacing any
    made before, so running it twice leaves one of each. Returns their names."""
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    block_id = _block_id()
    remove()
    made = []
    for notice in NOTICES:
        Automation(
            name=PREFIX + notice.name, description=f"Tell people: {notice.name}.",
            trigger=EventTrigger(expect={notice.event}, posture=Posture.Reactive,
                                 match={"prefect.resource.id": "greenlight.dataset.*"},
                                 threshold=1, within=0),
            actions=[SendNotification(block_document_id=block_id, subject=notice.subject,
                                      body=notice.body)]).create()
        made.append(PREFIX + notice.name)
    return made


def remove() -> int:
    """Delete greenlight's automations from the server; returns how many there were."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        ours = [a for a in client.read_automations() if a.name.startswith(PREFIX)]
        for automation in ours:
            client.delete_automation(automation.id)
    return len(ours)
