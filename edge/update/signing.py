"""Ed25519 signatures on update commands.

``sig`` is the hex Ed25519 signature of the command without ``sig`` in the canonical form of
:func:`edge.commands.signing.canonical` (compact JSON, sorted keys, UTF-8). Public keys are PEM
files (``update.public_keys``); several keys allow rotating the signing key without a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.commands.signing import canonical


class BadSignature(Exception):
    """Missing, malformed or not made by any trusted key."""


def load_public_keys(paths: Sequence[Path]) -> list[Ed25519PublicKey]:
    """The Ed25519 public keys in ``paths`` (PEM). Raises ValueError naming a bad file."""
    keys = []
    for p in paths:
        try:
            key = serialization.load_pem_public_key(Path(p).read_bytes())
        except (OSError, ValueError) as err:
            raise ValueError(f"update.public_keys: cannot load {p}: {err}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"update.public_keys: {p} is not an Ed25519 public key")
        keys.append(key)
    return keys


def sign_update(command: dict[str, Any], key: Ed25519PrivateKey) -> str:
    """Hex signature for ``command`` (what the operator's tool puts in ``sig``)."""
    return key.sign(canonical(command)).hex()


def verify_update(command: dict[str, Any], keys: Sequence[Ed25519PublicKey]) -> None:
    """Raise :class:`BadSignature` unless one of ``keys`` signed ``command``."""
    sig = command.get("sig")
    if not isinstance(sig, str) or not sig:
        raise BadSignature("sig: missing signature (updates must be signed with an update key)")
    try:
        raw = bytes.fromhex(sig)
    except ValueError:
        raise BadSignature("sig: not hex") from None
    if len(raw) != 64:
        raise BadSignature("sig: an Ed25519 signature has 64 bytes")
    body = canonical(command)
    for key in keys:
        try:
            key.verify(raw, body)
            return
        except InvalidSignature:
            continue
    raise BadSignature("sig: signature does not match any trusted update key")
