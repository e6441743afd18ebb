"""MQTT delivery against a real Debian mosquitto on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.config import MqttConfig
from edge.events.bus import EventBus
from edge.events.homeassistant import discovery_messages
from edge.events.mqtt import MqttPublisher
from edge.events.outbox import Outbox
from edge.events.sequence import PersistentSequencer
from edge.events.sinks import FanOut, JsonlSink, MqttSink
from edge.events.topics import Topics
from edge.metrics import Metrics
from tests.conftest import need, need_exe
from tests.fixtures.mqtt import Broker, MqttCollector, sample_event


def mqtt_cfg(broker: Broker, **kw: object) -> MqttConfig:
    base: dict[str, object] = {
        "host": broker.host,
        "port": broker.port,
        "client_id": "edge-test-pub",
        "reconnect_min_delay": 1,
        "reconnect_max_delay": 1,
        "drain_timeout": 10,
    }
    base.update(kw)
    return MqttConfig.model_validate(base)


def make_bus(tmp_path: Path, cfg: MqttConfig, jsonl: Path | None = None, **outbox_kw: object) -> EventBus:
    pub = MqttPublisher(cfg, "edge-1", Outbox(tmp_path / "outbox.db", **outbox_kw))  # type: ignore[arg-type]
    sinks = [MqttSink(pub)] + ([JsonlSink(jsonl)] if jsonl else [])
    bus = EventBus("edge-1", FanOut(sinks), PersistentSequencer(tmp_path / "outbox.db"))
    bus.publisher = pub  # type: ignore[attr-defined]
    pub.start()
    return bus


def event_msgs(c: MqttCollector) -> list[dict]:
    return [json.loads(m.payload) for m in c.matching("/events/")]


def wait_connected(pub: MqttPublisher, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not pub.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pub.connected, pub.last_error


def test_subscriber_gets_exactly_the_jsonl_events(
    tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector
) -> None:
    jsonl = tmp_path / "events.jsonl"
    bus = make_bus(tmp_path, mqtt_cfg(broker), jsonl)
    for i in range(50):
        bus.emit(sample_event("cam1" if i % 3 else "cam2", i, phase=("start", "update", "end")[i % 3]))
    got = mqtt_collector.wait_for(lambda ms: len([m for m in ms if "/events/" in m.topic]) >= 50)
    bus.close()
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    msgs = [m for m in got if "/events/" in m.topic]
    assert [json.loads(m.payload) for m in msgs] == lines
    for m in msgs:
        ev = json.loads(m.payload)
        assert m.topic == f"edge/edge-1/{ev['camera']}/events/track"
    status = mqtt_collector.wait_for(lambda ms: any(m.payload == b"offline" for m in ms if m.topic.endswith("status")))
    assert [m.payload for m in status if m.topic == "edge/edge-1/status"][-2:] == [b"online", b"offline"]


def test_status_retained_and_last_will(tmp_path: Path, broker: Broker, make_broker: Callable[..., Broker]) -> None:
    sub = need_exe("mosquitto_sub")
    script = (
        "import sys, time\n"
        "from edge.config import MqttConfig\n"
        "from edge.events.mqtt import MqttPublisher\n"
        "from edge.events.outbox import Outbox\n"
        f"cfg = MqttConfig(host='127.0.0.1', port={broker.port}, client_id='lwt-test', keepalive=5)\n"
        f"p = MqttPublisher(cfg, 'dev-lwt', Outbox({str(tmp_path / 'o.db')!r}))\n"
        "p.start()\n"
        "while not p.connected: time.sleep(0.05)\n"
        "print('up', flush=True); time.sleep(60)\n"
    )
    # sys.executable: the bare "python" on PATH may not be the interpreter (venv) running the tests.
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        out = subprocess.run(
            [sub, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "edge/dev-lwt/status", "-C", "1", "-W", "5", "-v"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert out.stdout.strip() == "edge/dev-lwt/status online"  # retained
        proc.kill()  # no clean disconnect: the broker publishes the last will
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            out = subprocess.run(
                [sub, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "edge/dev-lwt/status", "-C", "1", "-W", "3"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if out.stdout.strip() == "offline":
                break
            time.sleep(0.5)
        assert out.stdout.strip() == "offline"
    finally:
        proc.kill()


def test_outbox_over_budget_keeps_running_and_counts(tmp_path: Path, make_broker: Callable[..., Broker]) -> None:
    broker = make_broker()  # not started: everything piles up in the outbox
    metrics = Metrics()
    # retries every 5 s: the late subscriber below is subscribed before the publisher's next attempt
    # (with 1 s, a loaded machine let the publisher deliver everything to nobody first)
    bus = make_bus(tmp_path, mqtt_cfg(broker, reconnect_min_delay=5, reconnect_max_delay=5), max_bytes=64 * 1024)
    pub: MqttPublisher = bus.publisher  # type: ignore[attr-defined]
    metrics.outbox, metrics.publisher = pub.outbox, pub
    emitted = [bus.emit(sample_event("cam1", i)) for i in range(600)]
    st = pub.outbox.stats()
    assert st.dropped > 0 and st.depth + st.dropped == 600
    text = metrics.render().decode()
    assert f'edge_outbox_dropped_total{{reason="budget"}} {float(st.dropped)}' in text
    assert "edge_mqtt_connected 0.0" in text
    broker.start()
    collector = MqttCollector(broker, client_id="late-sub")  # subscribes before the publisher reconnects?
    try:
        got = collector.wait_for(lambda ms: len([m for m in ms if "/events/" in m.topic]) >= st.depth, 30)
        ids = [json.loads(m.payload)["id"] for m in got if "/events/" in m.topic]
        assert ids[-1] == emitted[-1].id  # the newest survived, the oldest were dropped
        assert emitted[0].id not in ids
    finally:
        collector.close()
        bus.close()


def test_home_assistant_discovery(tmp_path: Path, broker: Broker, mqtt_collector: MqttCollector) -> None:
    topics = Topics("edge", "edge-1")
    cfg = mqtt_cfg(broker, home_assistant=True)
    pub = MqttPublisher(cfg, "edge-1", Outbox(tmp_path / "o.db"), retained=discovery_messages(topics, ["cam1"]))
    pub.start()
    got = mqtt_collector.wait_for(lambda ms: len([m for m in ms if m.topic.startswith("homeassistant/")]) >= 4)
    pub.stop(1)
    cfgs = {m.topic: json.loads(m.payload) for m in got if m.topic.startswith("homeassistant/")}
    track = cfgs["homeassistant/sensor/edge_edge-1_cam1_track/config"]
    assert track["state_topic"] == "edge/edge-1/cam1/events/track"
    assert track["availability_topic"] == "edge/edge-1/status"


# -- TLS and passwords -------------------------------------------------------------------------


def _pki(d: Path, server_names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> dict[str, Path]:
    """CA, server cert for ``server_names`` (IPs or DNS names), client cert; written with ``cryptography``."""
    try:
        import cryptography  # noqa: F401 - in the [test] extra
    except ImportError:
        need(False, "python package cryptography (pip install -e .[test])")
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject: str, k, issuer: str, ik, ca: bool, san: list | None = None):  # type: ignore[no-untyped-def]
        b = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(ik, hashes.SHA256())

    out: dict[str, Path] = {}
    ca_key = key()
    ca = cert("edge-test-ca", ca_key, "edge-test-ca", ca_key, True)
    srv_key, cli_key = key(), key()

    def san(n: str) -> x509.GeneralName:
        try:
            return x509.IPAddress(ipaddress.ip_address(n))
        except ValueError:
            return x509.DNSName(n)

    srv = cert(server_names[0], srv_key, "edge-test-ca", ca_key, False, [san(n) for n in server_names])
    cli = cert("edge-client", cli_key, "edge-test-ca", ca_key, False)
    d.mkdir(parents=True, exist_ok=True)
    for n, obj in {"ca": ca, "server": srv, "client": cli}.items():
        out[n] = d / f"{n}.crt"
        out[n].write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    for n, k in {"server_key": srv_key, "client_key": cli_key}.items():
        out[n] = d / f"{n}.pem"
        out[n].write_bytes(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return out


PASSWORD = "s3cret-Pa55w0rd-xyz"


@pytest.fixture()
def tls_broker(tmp_path: Path, make_broker: Callable[..., Broker]) -> tuple[Broker, dict[str, Path]]:
    passwd = need_exe("mosquitto_passwd")
    pki = _pki(tmp_path)
    pw = tmp_path / "passwd"
    subprocess.run([passwd, "-c", "-b", str(pw), "edgeuser", PASSWORD], check=True, capture_output=True)
    pw.chmod(0o600)
    conf = (
        f"cafile {pki['ca']}\ncertfile {pki['server']}\nkeyfile {pki['server_key']}\n"
        f"require_certificate true\npassword_file {pw}\n"
    )
    b = make_broker(conf, anonymous=False, name="tls").start()
    return b, pki


def tls_cfg(b: Broker, pki: dict[str, Path], password: str) -> MqttConfig:
    return mqtt_cfg(
        b, username="edgeuser", password=password, tls_ca=pki["ca"], tls_cert=pki["client"], tls_key=pki["client_key"]
    )


def test_tls_with_password_delivers(
    tmp_path: Path,
    tls_broker: tuple[Broker, dict[str, Path]],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    b, pki = tls_broker
    caplog.set_level(logging.DEBUG)
    # The collector uses the same client cert (require_certificate) through paho's tls_set.
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[bytes] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-sub")
    sub.username_pw_set("edgeuser", PASSWORD)
    sub.tls_set(ca_certs=str(pki["ca"]), certfile=str(pki["client"]), keyfile=str(pki["client_key"]))
    sub.on_connect = lambda c, u, f, r, p: c.subscribe("edge/+/+/events/#", qos=1)
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect(b.host, b.port)
    sub.loop_start()
    try:
        bus = make_bus(tmp_path, tls_cfg(b, pki, PASSWORD))
        wait_connected(bus.publisher)  # type: ignore[attr-defined]
        time.sleep(0.3)
        sent = [bus.emit(sample_event("cam1", i)) for i in range(10)]
        deadline = time.monotonic() + 15
        while len(got) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        bus.close()
        assert [json.loads(p)["id"] for p in got] == [e.id for e in sent]
    finally:
        sub.loop_stop()
        sub.disconnect()
    out = capfd.readouterr()
    assert PASSWORD not in caplog.text and PASSWORD not in out.out + out.err


def test_wrong_password_is_clear_retries_and_never_leaks(
    tmp_path: Path,
    tls_broker: tuple[Broker, dict[str, Path]],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    b, pki = tls_broker
    wrong = "wrong-Pa55-" + PASSWORD[::-1]
    caplog.set_level(logging.DEBUG)
    bus = make_bus(tmp_path, tls_cfg(b, pki, wrong))
    pub: MqttPublisher = bus.publisher  # type: ignore[attr-defined]
    bus.emit(sample_event("cam1", 0))
    time.sleep(4.5)  # several 1 s retries
    assert not pub.connected
    assert pub.last_error and "Not authorized" in pub.last_error
    assert b.log_text().count("New connection from") >= 3  # it keeps retrying with backoff
    assert "refused the connection: Not authorized (check mqtt.username / mqtt.password)" in caplog.text
    assert caplog.text.count("refused the connection") == 1  # rate-limited
    assert pub.outbox.depth == 1  # the event waits safely
    bus.close()
    out = capfd.readouterr()
    for secret in (wrong, PASSWORD):
        assert secret not in caplog.text and secret not in out.out + out.err
    assert wrong not in repr(tls_cfg(b, pki, wrong))  # SecretStr


# -- TLS misconfiguration is explained -------------------------------------------------------


def _tls_only_broker(make_broker: Callable[..., Broker], pki: dict[str, Path], name: str) -> Broker:
    """An anonymous TLS broker (no client certificate needed) with ``pki``'s server cert."""
    conf = f"cafile {pki['ca']}\ncertfile {pki['server']}\nkeyfile {pki['server_key']}\n"
    return make_broker(conf, name=name).start()


def _failure_log(tmp_path: Path, cfg: MqttConfig, caplog: pytest.LogCaptureFixture) -> tuple[str, str | None]:
    """Run a publisher against a misconfigured broker for a few retries: (log text, last_error)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edge.events.mqtt"):
        pub = MqttPublisher(cfg, "edge-1", Outbox(tmp_path / f"o-{time.monotonic_ns()}.db"))
        pub.start()
        time.sleep(3.5)  # several 1 s retries
        connected, last_error = pub.connected, pub.last_error
        pub.stop(0)
        pub.outbox.close()
    assert not connected
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # explained once, then rate-limited while it retries
    return errors[0], last_error


@pytest.mark.parametrize("case", ["wrong_ca", "hostname_mismatch", "tls_to_plain_port", "plain_to_tls_port"])
def test_tls_misconfiguration_is_explained(
    case: str,
    tmp_path: Path,
    make_broker: Callable[..., Broker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pki = _pki(tmp_path)
    if case == "wrong_ca":
        other = _pki(tmp_path / "other")  # a CA that did not sign the broker's certificate
        b = _tls_only_broker(make_broker, pki, "tls")
        cfg = mqtt_cfg(b, tls_ca=other["ca"])
        expect = ["TLS: broker certificate rejected", "certificate", "check mqtt.tls_ca"]
    elif case == "hostname_mismatch":
        named = _pki(tmp_path / "named", server_names=("broker.example",))
        b = _tls_only_broker(make_broker, named, "named")
        cfg = mqtt_cfg(b, tls_ca=named["ca"])  # right CA, but we dial 127.0.0.1
        expect = ["TLS: broker certificate rejected", "mismatch", "mqtt.host must be a name or IP listed"]
    elif case == "tls_to_plain_port":
        b = make_broker().start()
        cfg = mqtt_cfg(b, tls_ca=pki["ca"])
        expect = ["TLS handshake failed", "the port does not speak TLS"]
    else:
        b = _tls_only_broker(make_broker, pki, "tls")
        cfg = mqtt_cfg(b)  # no mqtt.tls
        expect = ["closed the connection before accepting it", "the port expects TLS: set mqtt.tls: true"]
    line, last_error = _failure_log(tmp_path, cfg, caplog)
    print(f"\n{case}: {line}")
    assert f"MQTT broker 127.0.0.1:{b.port}" in line
    for needle in expect:
        assert needle in line, (needle, line)
    assert last_error and expect[-1] in last_error  # also what health reports
    broker_log = b.log_text()
    assert broker_log.count("New connection from") + broker_log.count("Client connection from") >= 2  # retries
