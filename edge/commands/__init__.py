"""Operator commands over MQTT (ack/resolve anomalies, label feedback), optionally HMAC-signed."""

from edge.commands.handler import OUTCOMES, AnomalyEngine, CommandHandler
from edge.commands.schema import AnomalyCommand, FeedbackCommand, parse_command
from edge.commands.signing import canonical, sign

__all__ = [
    "OUTCOMES",
    "AnomalyCommand",
    "AnomalyEngine",
    "CommandHandler",
    "FeedbackCommand",
    "canonical",
    "parse_command",
    "sign",
]
