"""The event envelope of DESIGN.md §6 and the registry of payload types.

Payloads are pydantic models declared in `shared.contracts`, so producer and consumer share
one schema; `@event_type("assessment.finding.posted")` registers one.
"""

import uuid
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from shared import tracing

TOPIC_PREFIX = "frontline"
EVENT_TYPES: dict[str, type["EventPayload"]] = {}
P = TypeVar("P", bound="EventPayload")


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1


def event_type(name: str, version: int = 1):
    def register(cls: type[P]) -> type[P]:
        if name in EVENT_TYPES and EVENT_TYPES[name] is not cls:
            raise ValueError(f"event type {name} registered twice")
        cls.TYPE, cls.VERSION = name, version
        EVENT_TYPES[name] = cls
        return cls

    return register


class Envelope(BaseModel):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = 1
    occurred_at: datetime
    producer: str
    key: str
    payload: dict[str, Any]
    # The HTTP request (X-Request-ID) and user behind the event; events applied in turn
    # carry them on. Absent from envelopes written before they existed.
    request_id: str | None = None
    actor_id: uuid.UUID | None = None
    actor_name: str | None = None
    # W3C trace context of the span that wrote the event (shared/tracing.py).
    traceparent: str | None = None

    @property
    def topic(self) -> str:
        return topic_for(self.type)


class UnknownEvent(Exception):
    pass


def topic_for(type_name: str) -> str:
    """`assessment.finding.posted` -> `frontline.assessment`: one topic per producing service."""
    return f"{TOPIC_PREFIX}.{type_name.split('.', 1)[0]}"


# Topics whose every record carries its entity's whole current state, keyed by the entity's
# id: Kafka may compact them (keep the last record per key) and a rebuild still finds
# everything. Event topics (assessment, incentives) keep a retention instead.
COMPACTED_SERVICES = ("registry",)


def is_compacted(topic: str) -> bool:
    """`frontline.registry` (with any namespace in front), not its DLQ."""
    return any(topic.endswith(f"{TOPIC_PREFIX}.{s}") for s in COMPACTED_SERVICES)


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics(with_dlq: bool = True) -> list[str]:
    """The standard topics, plus those of any other registered event type."""
    services = {"registry", "assessment", "incentives"} | {t.split(".")[0] for t in EVENT_TYPES}
    base = sorted(f"{TOPIC_PREFIX}.{s}" for s in services)
    return base + [dlq_topic(t) for t in base] if with_dlq else base


def envelope_for(
    payload: EventPayload,
    *,
    key: Any,
    producer: str,
    occurred_at: datetime,
    request_id: str | None = None,
    actor_id: uuid.UUID | None = None,
    actor_name: str | None = None,
) -> Envelope:
    return Envelope(
        type=payload.TYPE,
        version=payload.VERSION,
        occurred_at=occurred_at,
        producer=producer,
        key=str(key),
        payload=payload.model_dump(mode="json"),
        request_id=request_id,
        actor_id=actor_id,
        actor_name=actor_name,
        traceparent=tracing.current(),
    )


def encode(envelope: Envelope) -> bytes:
    return orjson.dumps(envelope.model_dump(mode="json"))


def decode(raw: bytes | str) -> Envelope:
    return Envelope.model_validate(orjson.loads(raw))


def parse_payload(envelope: Envelope) -> EventPayload:
    cls = EVENT_TYPES.get(envelope.type)
    if cls is None:
        raise UnknownEvent(envelope.type)
    return cls.model_validate(envelope.payload)


def catalogue() -> dict[str, Any]:
    """The event catalogue as an AsyncAPI 3 document (served at /<service>/asyncapi.json)."""
    messages = {
        name: {
            "name": name,
            "payload": cls.model_json_schema(),
            "x-version": cls.VERSION,
        }
        for name, cls in sorted(EVENT_TYPES.items())
    }
    channels = {
        topic: {
            "address": topic,
            "messages": {
                n.replace(".", "_"): {"$ref": f"#/components/messages/{n}"}
                for n in messages
                if topic_for(n) == topic
            },
        }
        for topic in all_topics(with_dlq=False)
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Frontline events", "version": "1"},
        "channels": channels,
        "components": {"messages": messages},
    }
