"""User-facing errors: the CLI prints ``str(err)`` as one line and exits non-zero, no traceback."""


class EdgeError(Exception):
    """A problem the user can fix (bad config, missing file, unreachable URL, bad model)."""


class ConfigError(EdgeError):
    """The configuration file is missing or invalid."""


class ModelError(EdgeError):
    """A model is unknown, missing, corrupt or cannot be loaded."""


class SourceError(EdgeError):
    """A camera or video source cannot be opened."""
