"""The rule engine: visits and anomalies from events (no frames, no models).

It reads only events, so it can also run on a central consumer of many devices' MQTT streams.
"""

from edge.rules.config import RulesConfig, VisitsConfig
from edge.rules.engine import RuleEngine, build_processors

__all__ = ["RuleEngine", "RulesConfig", "VisitsConfig", "build_processors"]
