"""Events: the versioned schema, sinks (MQTT with a durable outbox, JSON lines, stdout).

Modules (imported directly, so ``edge.events.schema`` stays free of paho/sqlite imports):
``schema`` (Event, utc_iso, new_event_id), ``bus`` (EventBus: stamps seq, fans out),
``sinks`` (Sink, JsonlSink, StdoutSink, MqttSink, FanOut), ``outbox`` (Outbox),
``mqtt`` (MqttPublisher), ``sequence`` (PersistentSequencer), ``topics`` (Topics),
``homeassistant`` (discovery_messages). See docs/events.md.
"""
