"""The event path, built in one place for ``edge run`` and ``edge replay``:
sinks -> :class:`FanOut` (-> per-camera detail filter) -> :class:`EventBus` with its processors.

``edge run`` delivers to the outputs the config names (:func:`output_sinks`: MQTT through the
durable outbox, a JSON-lines file, stdout), numbers events persistently and runs the rule
engine; ``edge replay`` passes its own sinks (its ``--events-out`` file, a callback) and an
in-memory sequencer. A new output is one more branch in :func:`output_sinks`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from edge.clock import SystemClock
from edge.config import AppConfig
from edge.counts import DetailSink
from edge.events.bus import EventBus, Processor, ProcessorFactory, SequenceSource
from edge.events.homeassistant import discovery_messages
from edge.events.mqtt import MqttPublisher
from edge.events.outbox import Outbox
from edge.events.sequence import PersistentSequencer
from edge.events.sinks import FanOut, JsonlSink, MqttSink, Sink, StdoutSink
from edge.events.topics import Topics
from edge.metrics import Metrics
from edge.rules import RuleEngine, build_processors
from edge.rules.metrics import RulesCollector

log = logging.getLogger("edge.app")


def build_bus(
    device: str,
    sinks: Sequence[Sink],
    sequencer: SequenceSource,
    *,
    processors: Sequence[Processor] = (),
    emitting: Sequence[ProcessorFactory] = (),
    detail: Mapping[str, str] | None = None,
    metrics: Metrics | None = None,
) -> EventBus:
    """The event bus delivering to ``sinks``; ``detail`` (camera -> events.detail, for cameras
    not at "tracks") thins what each camera sends; ``metrics`` counts every event."""
    fan = FanOut(list(sinks))
    bus = EventBus(
        device,
        DetailSink(fan, dict(detail)) if detail else fan,
        sequencer,
        on_event=metrics.count_event if metrics else None,
        processors=processors,
        emitting=emitting,
    )
    if metrics is not None:
        for proc in bus.processors:
            if isinstance(proc, RuleEngine):
                metrics.registry.register(RulesCollector(proc))
    return bus


def build_publisher(config: AppConfig, metrics: Metrics | None = None) -> MqttPublisher | None:
    """The MQTT publisher (not started) over its durable outbox, if ``mqtt`` is configured."""
    if config.mqtt is None:
        return None
    ob = config.outbox
    outbox = Outbox(ob.path, ob.max_bytes, ob.when_full, ob.synchronous, memory_max_bytes=ob.memory_max_bytes)
    enabled = [n for n, c in config.cameras.items() if c.enabled]
    lines = [(n, ln) for n, c in config.cameras.items() if c.enabled and config.counts.enabled for ln in c.lines]
    publisher = MqttPublisher(
        config.mqtt,
        config.device_id,
        outbox,
        on_latency=metrics.observe_publish if metrics else None,
        retained=discovery_messages(Topics(config.mqtt.topic_prefix, config.device_id), enabled, lines)
        if config.mqtt.home_assistant
        else (),
    )
    if metrics is not None:
        metrics.watch_delivery(outbox, publisher)
    return publisher


def output_sinks(config: AppConfig, publisher: MqttPublisher | None) -> list[Sink]:
    """Every event output ``config`` names, in delivery order."""
    sinks: list[Sink] = []
    if publisher is not None:
        sinks.append(MqttSink(publisher))
    if config.outputs.jsonl is not None:
        sinks.append(JsonlSink(config.outputs.jsonl))
    if config.outputs.stdout:
        sinks.append(StdoutSink())
    if not sinks:
        log.warning("no event output configured (mqtt, outputs.jsonl, outputs.stdout): events are discarded")
    return sinks


def build_run_bus(
    config: AppConfig,
    publisher: MqttPublisher | None,
    metrics: Metrics | None = None,
    *,
    processors: Sequence[Processor] | None = None,
    emitting: Sequence[ProcessorFactory] = (),
) -> EventBus:
    """``edge run``'s bus: the configured outputs, sequence numbers persisted in the outbox file
    (one state file per device), the rule engine (``processors``, default from the config)."""
    detail = {n: c.events.detail for n, c in config.cameras.items() if c.events.detail != "tracks"}
    return build_bus(
        config.device_id,
        output_sinks(config, publisher),
        PersistentSequencer(config.outbox.path),
        processors=build_processors(config, SystemClock(), None) if processors is None else processors,
        emitting=emitting,
        detail=detail,
        metrics=metrics,
    )


def build_delivery(config: AppConfig, metrics: Metrics | None = None) -> tuple[EventBus, MqttPublisher | None]:
    """The event bus with every configured sink; the MQTT publisher (not started) if configured."""
    publisher = build_publisher(config, metrics)
    return build_run_bus(config, publisher, metrics), publisher


def rule_engine(processors: Sequence[Processor] | EventBus) -> RuleEngine | None:
    """The rule engine among ``processors`` (or a bus's), if rules are on."""
    procs = processors.processors if isinstance(processors, EventBus) else processors
    return next((p for p in procs if isinstance(p, RuleEngine)), None)
