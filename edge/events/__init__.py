"""Events: the versioned schema, sinks (MQTT with a durable outbox, JSON lines, stdout)."""
