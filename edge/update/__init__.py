"""Signed remote configuration and model updates (``<prefix>/<device>/cmd/update``).

An operator signs an update command with an Ed25519 key (:func:`sign_update`); the device
verifies it against ``update.public_keys``, validates the new config fully, swaps the file
atomically (keeping the previous one), restarts ``run()`` with it and rolls back by itself when
the cameras do not come up within ``update.health_timeout``. See docs/fleet.md.
"""

from edge.update.manager import RESULTS, UpdateManager, UpdateRefused, UpdateSession, run_with_updates
from edge.update.signing import sign_update, verify_update

__all__ = [
    "RESULTS",
    "UpdateManager",
    "UpdateRefused",
    "UpdateSession",
    "run_with_updates",
    "sign_update",
    "verify_update",
]
