"""Screen time per class and period from state events: synthetic timelines, then a real video
through the real whole-frame classifier (mobilenet-v2-imagenet-quant)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from edge.config import config_for_video
from edge.events.bus import EventBus
from edge.events.schema import Event, Sequencer, utc_iso
from edge.events.sinks import Sink
from edge.replay import replay
from edge.rules.screentime import ScreenTime
from edge.tracking.scene import SceneState

T0 = 1_795_003_200.0  # a multiple of 3600 (and 60, 10): periods start here


def state(phase: str, label: str, since: float, at: float, camera: str = "cam") -> Event:
    return Event(
        device="d", camera=camera, type="state", phase=phase, ts=utc_iso(at), start=utc_iso(since), label=label
    )  # type: ignore[arg-type]


def feed(st: ScreenTime, timeline: list[tuple[str, float, float]], camera: str = "cam") -> list[Event]:
    """(label, since, until) states back to back, as SceneState reports them."""
    out: list[Event] = []
    for label, since, until in timeline:
        out += st.process(state("start", label, since, since, camera))
        out += st.process(state("end", label, since, until, camera))
    return out


def test_periods_are_clock_aligned_split_states_at_the_boundary_and_count_none() -> None:
    st = ScreenTime(period=3600)
    out = feed(st, [("none", T0 + 600, T0 + 1200), ("taxi", T0 + 1200, T0 + 4000), ("none", T0 + 4000, T0 + 4100)])
    assert len(out) == 1  # the first hour ended while the taxi was on screen
    a = out[0].attrs
    assert out[0].type == "screentime" and out[0].camera == "cam" and out[0].ts == utc_iso(T0 + 3600)
    assert a == {
        "period": 3600,
        "from": utc_iso(T0),
        "to": utc_iso(T0 + 3600),
        "totals": {"taxi": 2400.0},
        "none": 600.0,
    }
    final = st.close()
    assert len(final) == 1  # the partial second hour, up to the last state's end
    assert final[0].attrs["from"] == utc_iso(T0 + 3600) and final[0].attrs["to"] == utc_iso(T0 + 4100)
    assert final[0].attrs["totals"] == {"taxi": 400.0} and final[0].attrs["none"] == 100.0
    assert st.close() == []  # nothing twice


def test_tick_closes_a_period_while_a_state_is_still_on_screen_and_cameras_are_separate() -> None:
    st = ScreenTime(period=60)
    assert st.process(state("start", "bus", T0 + 10, T0 + 10, "a")) == []
    assert st.process(state("start", "none", T0 + 30, T0 + 30, "b")) == []
    assert st.tick(T0 + 61) == []  # a few seconds of grace for the period's last events
    out = st.tick(T0 + 130)
    assert [(e.camera, e.attrs["from"], e.attrs["totals"], e.attrs["none"]) for e in out] == [
        ("a", utc_iso(T0), {"bus": 50.0}, 0.0),
        ("a", utc_iso(T0 + 60), {"bus": 60.0}, 0.0),
        ("b", utc_iso(T0), {}, 30.0),
        ("b", utc_iso(T0 + 60), {}, 60.0),
    ]
    out = st.process(state("end", "bus", T0 + 10, T0 + 150, "a"))
    assert out == [] and st.close(T0 + 170)[0].attrs["totals"] == {"bus": 30.0}  # 120..150 of the third minute


def test_as_a_bus_processor_its_events_are_stamped_and_delivered() -> None:
    class Keep(Sink):
        def __init__(self) -> None:
            self.events: list[Event] = []

        def emit(self, event: Event) -> None:
            self.events.append(event)

    sink = Keep()
    bus = EventBus("dev1", sink, Sequencer(), processors=[ScreenTime(period=10)])
    for e in [state("start", "taxi", T0 + 1, T0 + 1), state("end", "taxi", T0 + 1, T0 + 25)]:
        bus.emit(e)
    got = [e for e in sink.events if e.type == "screentime"]
    assert [(e.device, e.seq > 0, e.attrs["totals"]) for e in got] == [
        ("dev1", True, {"taxi": 9.0}),
        ("dev1", True, {"taxi": 10.0}),
    ]


def test_bad_period_is_refused() -> None:
    with pytest.raises(ValueError, match="screentime period"):
        ScreenTime(period=0)


def test_scene_states_and_screen_time_cover_the_whole_timeline() -> None:
    """SceneState -> state events -> ScreenTime: durations add up with no class at all in places."""
    scene, st, ends = SceneState(min_score=0.5, min_frames=2, labels=["taxi"]), ScreenTime(period=10), []
    frames = [("taxi", 0.9)] * 20 + [("taxi", 0.2)] * 30 + [("bus", 0.9)] * 10 + [("taxi", 0.8)] * 41
    out: list[Event] = []
    for i, (label, score) in enumerate(frames):
        for c in scene.update(label, score, T0 + 3 + i * 0.2):
            out += st.process(state(c.phase, c.label, c.since, c.at))
            ends += [c] if c.phase == "end" else []
    for c in scene.close(T0 + 3 + 100 * 0.2):
        out += st.process(state(c.phase, c.label, c.since, c.at))
        ends.append(c)
    out += st.close()
    assert sum(c.duration for c in ends) == pytest.approx(20.0)
    assert [c.label for c in ends] == ["taxi", "none", "taxi"]
    taxi = sum(e.attrs["totals"].get("taxi", 0.0) for e in out)
    none = sum(e.attrs["none"] for e in out)
    assert taxi == pytest.approx(4.0 + 8.0) and none == pytest.approx(8.0)
    assert [e.attrs["from"] for e in out] == [utc_iso(T0), utc_iso(T0 + 10), utc_iso(T0 + 20)]


LABELS = ["cab, hack, taxi, taxicab", "minivan", "limousine, limo", "sports car, sport car", "convertible"]


@pytest.mark.usefixtures("model_env")
def test_real_video_state_durations_and_screen_time_add_up_to_its_length(car_video: Path) -> None:
    cap = cv2.VideoCapture(str(car_video))
    n, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    length = (n - 1) / fps  # first to last frame: the timeline the frames show
    app = config_for_video(
        str(car_video),
        detect={
            "classifier_model": "mobilenet-v2-imagenet-quant",
            "attributes_model": None,
            "classifier_labels": LABELS,
            "classifier_min_score": 0.3,
            "fps": 5,
        },
        motion={"enabled": False},  # every sampled frame is classified
    )
    sample = 1 / app.cameras["camera"].detect.fps
    st_10, st_hour = ScreenTime(period=10), ScreenTime()
    states: list[Event] = []
    screen: list[Event] = []

    def on_event(e: Event) -> None:
        states.extend([e] if e.type == "state" else [])
        screen.extend(st_10.process(e))
        st_hour.process(e)

    start = T0 + 3  # not on a period boundary: the first 10 s period is partial
    replay(str(car_video), app, "camera", on_event=on_event, show_progress=False, start_time=start)
    screen += st_10.close()
    hour = st_hour.close()

    ends = [e for e in states if e.phase == "end"]
    starts = [e for e in states if e.phase == "start"]
    assert len(starts) == len(ends) >= 3 and {e.label for e in ends} >= {"none", LABELS[0]}
    assert all(e.start == s.ts for s, e in zip(starts, ends, strict=True))  # each state ends what it started
    assert all(a.ts == b.start for a, b in zip(ends, ends[1:], strict=False))  # and the next begins there
    durations = sum(e.attrs["duration"] for e in ends)
    assert ends[0].start == utc_iso(start)
    assert abs(durations - length) <= sample, (durations, length)

    by_class: dict[str, float] = {}
    for e in ends:
        by_class[e.label or ""] = by_class.get(e.label or "", 0.0) + e.attrs["duration"]
    assert [e.attrs["from"] for e in screen] == [utc_iso(T0 + 10 * k) for k in range(len(screen))]
    assert all(e.attrs["to"] == utc_iso(T0 + 10 * (k + 1)) for k, e in enumerate(screen[:-1]))
    assert len(screen) == 4  # 3..10, 10..20, 20..30, 30..end
    total = sum(sum(e.attrs["totals"].values()) + e.attrs["none"] for e in screen)
    assert abs(total - length) <= sample and total == pytest.approx(durations, abs=0.05)
    taxi = sum(e.attrs["totals"].get(LABELS[0], 0.0) for e in screen)
    assert taxi == pytest.approx(by_class[LABELS[0]], abs=0.05) and taxi > 1.0
    assert len(hour) == 1 and hour[0].attrs["from"] == utc_iso(T0)
    assert sum(hour[0].attrs["totals"].values()) + hour[0].attrs["none"] == pytest.approx(durations, abs=0.05)


@pytest.mark.usefixtures("model_env")
def test_classifier_runs_at_its_own_rate_whatever_the_motion_gate(
    car_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """detect.classifier_fps: 1 classification per second of video with the motion gate on (the
    gate skips most of the quiet lot's frames), and the states still tile the whole video."""
    from edge.inference.model import Classifier

    calls: list[int] = []
    real = Classifier.classify

    def counting(self: Classifier, image: object, *a: object, **k: object) -> object:
        calls.append(1)
        return real(self, image, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Classifier, "classify", counting)
    cap = cv2.VideoCapture(str(car_video))
    length = (cap.get(cv2.CAP_PROP_FRAME_COUNT) - 1) / cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    app = config_for_video(
        str(car_video),
        detect={
            "classifier_model": "mobilenet-v2-imagenet-quant",
            "classifier_fps": 1,
            "classifier_labels": LABELS,
            "classifier_min_score": 0.3,
            "attributes_model": None,
            "fps": 5,
        },
    )
    ends: list[Event] = []
    res = replay(
        str(car_video),
        app,
        "camera",
        on_event=lambda e: ends.extend([e] if e.type == "state" and e.phase == "end" else []),
    )
    assert res.frames_inferred < res.frames  # the gate did skip frames
    assert abs(len(calls) - length) <= 2, (len(calls), length)
    assert abs(sum(e.attrs["duration"] for e in ends) - length) <= 1.0
