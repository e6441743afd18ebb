"""Operator tool: make an update key pair, or sign an update command for one device.

``python -m edge.update keygen update.key update.pub``
``python -m edge.update sign --key update.key --device edge-1 --config new.yaml --version 2026-11-22.1``
``python -m edge.update sign --key update.key --device edge-1 --model yolox-nano-coco --sha256 HEX``

``sign`` prints the command JSON; publish it (QoS 1) on ``<prefix>/<device>/cmd/update`` and read
the answer on ``<prefix>/<device>/cmd/reply`` (docs/fleet.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.update.signing import sign_update


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    ap = argparse.ArgumentParser(prog="python -m edge.update", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    kg = sub.add_parser("keygen", help="write an Ed25519 private key and its public key (PEM)")
    kg.add_argument("private")
    kg.add_argument("public")
    sg = sub.add_parser("sign", help="print a signed update command")
    sg.add_argument("--key", required=True, help="Ed25519 private key (PEM)")
    sg.add_argument("--device", required=True)
    what = sg.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="the new config file (YAML)")
    what.add_argument("--model", help="model reference for detect.model (kind model)")
    sg.add_argument("--sha256", help="with --model: sha256 of the model's entry file (the device checks it)")
    sg.add_argument("--field", default="model", help="with --model: model, attributes_model or classifier_model")
    sg.add_argument("--camera", action="append", help="with --model: only these cameras (default all)")
    sg.add_argument("--version", help="version label shown in the status (default: content hash)")
    args = ap.parse_args(argv)
    if args.cmd == "keygen":
        key = Ed25519PrivateKey.generate()
        priv = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        Path(args.private).write_bytes(priv)
        Path(args.private).chmod(0o600)
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        Path(args.public).write_bytes(pub)
        return 0
    loaded = serialization.load_pem_private_key(Path(args.key).read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        print(f"{args.key}: not an Ed25519 private key", file=sys.stderr)
        return 2
    ts = round(time.time(), 3)  # ms: updates must be strictly newer than the last, even within one second
    cmd: dict[str, object] = {"id": uuid.uuid4().hex, "cmd": "update", "ts": ts, "device": args.device}
    if args.config:
        cmd.update(kind="config", config=Path(args.config).read_text(encoding="utf-8"))
    else:
        model: dict[str, object] = {"ref": args.model, "field": args.field}
        if args.sha256:
            model["sha256"] = args.sha256
        if args.camera:
            model["cameras"] = args.camera
        cmd.update(kind="model", model=model)
    if args.version:
        cmd["version"] = args.version
    cmd["sig"] = sign_update(cmd, loaded)
    print(json.dumps(cmd, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
