"""The operator console: ``edge fleet`` stores every device's events, visits and anomalies in one
database (SQLite or PostgreSQL), runs the rule engine on the merged stream and serves a web console.

Modules: ``config`` (YAML), ``store`` (data-access layer, SQLAlchemy Core), ``migrations``
(versioned schema), ``ingest`` (MQTT subscriber), ``rules`` (cross-device engine),
``web`` (Starlette console), ``export`` (CSV/JSON), ``service`` (wires them for the CLI).
"""
