"""Broker identity and isolation (deploy/mosquitto/) against real mosquitto: per-device TLS
client certificates with ``use_identity_as_username`` and the deployed ACL, and the site ->
central bridge across an outage of the central broker."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.app import run
from edge.config import AppConfig, CameraConfig
from tests.conftest import ROOT, need
from tests.fixtures.mqtt import Broker
from tests.test_app import FakePipeline, FakeReader, config

MOSQ = ROOT / "deploy" / "mosquitto"
# lines of the deployed configs the test fixture sets itself (port, data dir, log file)
_FIXTURE_KEYS = ("listener", "persistence", "persistence_location", "log_dest", "include_dir", "max_queued_messages")


def make_pki(d: Path, clients: tuple[str, ...]) -> Path:
    """ca.crt, broker.crt/.key (127.0.0.1) and ``<cn>.crt/.key`` per client CN, as in deploy/mosquitto."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        need(False, "python package cryptography (pip install -e .[test])")
        raise
    now = dt.datetime.now(dt.timezone.utc)
    d.mkdir(parents=True, exist_ok=True)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())

    def issue(cn: str, key: Any, ca: bool, san: list[Any] | None = None) -> Any:
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name("edge-fleet-ca"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(ca_key, hashes.SHA256())

    def write(stem: str, cert: Any, key: Any | None) -> None:
        (d / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            (d / f"{stem}.key").write_bytes(pem)

    write("ca", issue("edge-fleet-ca", ca_key, True), None)
    k = ec.generate_private_key(ec.SECP256R1())
    write("broker", issue("127.0.0.1", k, False, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), k)
    for cn in clients:
        k = ec.generate_private_key(ec.SECP256R1())
        write(cn, issue(cn, k, False), k)
    return d


def deployed_conf(name: str, pki: Path, confdir: Path, **subst: str) -> str:
    """A file of deploy/mosquitto with container paths pointed at the test's files; the lines the
    fixture owns (listener, persistence, log) dropped."""
    confdir.mkdir(parents=True, exist_ok=True)
    (confdir / "acl").write_text((MOSQ / "acl").read_text())
    out = []
    for line in (MOSQ / name).read_text().splitlines():
        if line.split(" ", 1)[0] in _FIXTURE_KEYS:
            continue
        line = line.replace("/mosquitto/certs/", f"{pki}/").replace("/mosquitto/config/", f"{confdir}/")
        for old, new in subst.items():
            line = line.replace(old, new)
        out.append(line)
    return "\n".join(out) + "\n"


def site_broker(make_broker: Callable[..., Broker], pki: Path, tmp: Path, central: Broker | None = None) -> Broker:
    conf = deployed_conf("site.conf", pki, tmp / "site-config")
    if central is not None:
        conf += deployed_conf(
            "conf.d/bridge.conf", pki, tmp / "site-config", **{"central.example.net:8883": f"127.0.0.1:{central.port}"}
        )
    return make_broker(conf, anonymous=False, name="site")


class Client:
    """A paho client authenticated by the client certificate ``<pki>/<cn>.crt`` (persistent session)."""

    def __init__(self, broker: Broker, pki: Path, cn: str, subscribe: str | None = None, client_id: str = "") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes]] = []
        self.granted: list[Any] = []
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{cn}", clean_session=False, protocol=mqtt.MQTTv311
        )
        self.client.tls_set(
            ca_certs=str(pki / "ca.crt"), certfile=str(pki / f"{cn}.crt"), keyfile=str(pki / f"{cn}.key")
        )
        self.client.reconnect_delay_set(1, 1)

        def on_connect(client, userdata, flags, reason, props):  # type: ignore[no-untyped-def]
            if reason.is_failure:
                return
            if subscribe:
                client.subscribe(subscribe, qos=1)
            else:
                self._ready.set()

        def on_subscribe(client, userdata, mid, reasons, props):  # type: ignore[no-untyped-def]
            self.granted = list(reasons)
            self._ready.set()

        def on_message(client, userdata, msg):  # type: ignore[no-untyped-def]
            with self._cond:
                self.messages.append((msg.topic, bytes(msg.payload)))
                self._cond.notify_all()

        self.client.on_connect, self.client.on_subscribe, self.client.on_message = on_connect, on_subscribe, on_message
        self.client.connect_async(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        assert self._ready.wait(10), f"{cn} could not connect/subscribe"

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def wait_for(self, pred: Callable[[list[tuple[str, bytes]]], bool], timeout: float) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.messages) and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_device_cannot_publish_as_or_read_commands_of_another(
    tmp_path: Path, make_broker: Callable[..., Broker]
) -> None:
    pki = make_pki(tmp_path / "pki", ("edge-a", "edge-b", "fleet-console"))
    site = site_broker(make_broker, pki, tmp_path).start()
    console = Client(site, pki, "fleet-console", "edge/#")
    b_cmds = Client(site, pki, "edge-b", "edge/edge-b/cmd/#", client_id="b-cmd")
    a_spy = Client(site, pki, "edge-a", "edge/edge-b/cmd/#", client_id="a-spy")  # A tries to read B's commands
    a = Client(site, pki, "edge-a", client_id="a-pub")
    clients = [console, b_cmds, a_spy, a]
    try:
        a.publish("edge/edge-b/gate/events/track", '{"id":"forged"}')  # A pretends to be B
        a.publish("edge/edge-b/status", "offline")
        a.publish("edge/edge-a/gate/events/track", '{"id":"genuine"}')  # its own topic works
        console.publish("edge/edge-b/cmd/ack", '{"id":"c1","cmd":"ack","anomaly":"x"}')
        got = console.wait_for(lambda m: any(t == "edge/edge-b/cmd/ack" for t, _ in m), 10)
        assert b_cmds.wait_for(lambda m: bool(m), 10) == [
            ("edge/edge-b/cmd/ack", b'{"id":"c1","cmd":"ack","anomaly":"x"}')
        ]
        time.sleep(0.5)  # anything forged would have arrived by now
        topics = [t for t, _ in console.messages]
        assert "edge/edge-a/gate/events/track" in topics  # the ACL lets A publish as itself
        assert "edge/edge-b/gate/events/track" not in topics and "edge/edge-b/status" not in topics, got
        assert a_spy.messages == []  # A never sees B's commands
        log = site.log_text()
        assert "Denied PUBLISH from a-pub (d0, q1, r0, m1, 'edge/edge-b/gate/events/track'" in log
        assert "Denied PUBLISH from a-pub (d0, q1, r0, m2, 'edge/edge-b/status'" in log
    finally:
        for c in clients:
            c.close()


def test_events_cross_the_bridge_once_per_id_after_central_outage(
    tmp_path: Path, make_broker: Callable[..., Broker], record_property: Callable[[str, object], None]
) -> None:
    pki = make_pki(tmp_path / "pki", ("edge-1", "site1-bridge", "fleet-console"))
    central = make_broker(
        deployed_conf("central.conf", pki, tmp_path / "central-config"), anonymous=False, name="central"
    )
    central.start()
    site = site_broker(make_broker, pki, tmp_path, central).start()
    consumer = Client(central, pki, "fleet-console", "edge/+/+/events/#")
    cfg = config(
        tmp_path,
        {"gate": "rtsp://cam/gate"},
        device_id="edge-1",
        mqtt={
            "host": site.host,
            "port": site.port,
            "tls_ca": str(pki / "ca.crt"),
            "tls_cert": str(pki / "edge-1.crt"),
            "tls_key": str(pki / "edge-1.key"),
            "reconnect_min_delay": 1,
            "reconnect_max_delay": 1,
        },
        commands={"enabled": False},
    )

    def cam(name: str, cc: CameraConfig) -> FakeReader:
        return FakeReader(name, None, 0.02)

    def pipe(name: str, cc: CameraConfig, app: AppConfig) -> FakePipeline:
        return FakePipeline(name, cc, app)

    stop = threading.Event()
    t = threading.Thread(target=run, args=(cfg, stop), kwargs={"camera_factory": cam, "pipeline_factory": pipe})
    t.start()
    try:
        assert consumer.wait_for(lambda m: len(m) >= 20, 20), "no events crossed the bridge"
        central.stop()  # outage: the site broker queues for the bridge
        before = len((tmp_path / "events.jsonl").read_text().splitlines())
        time.sleep(3)
        during = len((tmp_path / "events.jsonl").read_text().splitlines()) - before
        central.start()
        time.sleep(2)
    finally:
        stop.set()
        t.join(30)
    sent = [json.loads(x)["id"] for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    msgs = consumer.wait_for(lambda m: {json.loads(p)["id"] for _, p in m} >= set(sent), 30)
    consumer.close()
    ids = [json.loads(p)["id"] for _, p in msgs]
    missing = set(sent) - set(ids)
    duplicates = len(ids) - len(set(ids))
    record_property("bridge_events", len(sent))
    record_property("bridge_duplicates", duplicates)
    print(
        f"bridge: {len(sent)} events sent ({during} during the 3 s outage), {len(ids)} received, "
        f"{duplicates} duplicates, {len(missing)} missing"
    )
    assert during >= 50, "the appliance kept emitting while the central broker was down"
    assert not missing, f"{len(missing)} of {len(sent)} events lost across the bridge"
    assert set(ids) <= set(sent)
    # at-least-once: duplicates are allowed (the consumer dedupes on id) but must be few
    assert duplicates <= 100, duplicates
