"""Edge video analytics appliance: camera -> frames -> inference -> tracks -> events -> sinks."""

__version__ = "0.1.0"
