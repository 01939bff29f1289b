"""The generic backend registry (rootstream.backends) and the capture factory on top of it."""

from __future__ import annotations

import pytest

import rootstream.capture as capture_package
from rootstream.backends import BackendProbe, BackendRegistry, accepted_options, describe_failure
from rootstream.capture import CAPTURES, open_capture, probe_captures, screen_evidence
from rootstream.capture.pattern import PatternCapture
from rootstream.errors import CaptureError, EncodeError


class RefusesToOpen:
    """A backend whose device is never there."""

    def __init__(self, fps: int = 60):
        raise EncodeError("no such device", hint="plug it in", details=["/dev/nothing"])


class Buggy:
    def __init__(self):
        self.ratio = 1 / 0  # a bug, not a missing device


class Opens:
    def __init__(self, fps: int = 60):
        self.fps = fps
        self.closed = False

    def describe(self) -> str:
        return f"{self.fps} fps"

    def close(self) -> None:
        self.closed = True


def registry() -> BackendRegistry:
    return BackendRegistry("encoder", {
        "absent": "rootstream.no_such_module:Nothing",
        "refuses": f"{__name__}:RefusesToOpen",
        "opens": f"{__name__}:Opens",
    }, EncodeError)


def test_unknown_name_lists_known_names():
    with pytest.raises(EncodeError, match="unknown encoder backend 'nope'") as info:
        registry().open("nope")
    assert info.value.hint == "choose one of: auto, absent, refuses, opens"


def test_auto_takes_the_first_that_opens_and_passes_options():
    backend = registry().open("auto", fps=30)
    assert isinstance(backend, Opens) and backend.fps == 30


def test_auto_failure_lists_every_backend_and_why():
    with pytest.raises(EncodeError, match=r"no encoder backend could be opened \(tried absent, "
                                          r"refuses\)") as info:
        registry().open_first(("absent", "refuses"))
    assert info.value.details == [
        "absent: ModuleNotFoundError: No module named 'rootstream.no_such_module'",
        "refuses: no such device (/dev/nothing); plug it in",
    ]


def test_a_bug_in_a_backend_is_not_mistaken_for_absence():
    buggy = BackendRegistry("encoder", {"buggy": f"{__name__}:Buggy"}, EncodeError)
    with pytest.raises(ZeroDivisionError):
        buggy.open("auto")


def test_probe_reports_each_backend_and_closes_what_it_opened():
    probes = registry().probe(fps=24)
    assert probes == [
        BackendProbe("absent", False,
                     "ModuleNotFoundError: No module named 'rootstream.no_such_module'"),
        BackendProbe("refuses", False, "no such device (/dev/nothing); plug it in"),
        BackendProbe("opens", True, "24 fps"),
    ]


def test_explicit_backend_refuses_options_it_does_not_take():
    with pytest.raises(CaptureError, match="the test capture backend does not take region"):
        open_capture("test", region=(0, 0, 10, 10))
    # An option left unset (None) is not a request.
    with open_capture("test", display=None, width=640, height=480) as capture:
        assert (capture.width, capture.height) == (640, 480)


def test_accepted_options_follow_the_constructor_signature():
    assert accepted_options(PatternCapture, {"fps": 30, "display": ":1"}) == {"fps": 30}


def test_describe_failure_of_a_plain_exception():
    assert describe_failure(OSError(13, "Permission denied")) == (
        "PermissionError: [Errno 13] Permission denied")


def test_capture_table_is_in_auto_order():
    assert CAPTURES.names == ("kms", "portal", "x11", "test")
    with pytest.raises(CaptureError, match="unknown capture backend 'vnc'") as info:
        open_capture("vnc")
    assert "kms, portal, x11, test" in info.value.hint


def test_auto_uses_the_test_pattern_only_without_a_screen(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    if screen_evidence() is not None:
        pytest.skip(f"this machine has a screen: {screen_evidence()}")
    with open_capture("auto", width=640, height=480) as capture:
        assert capture.name == "test"
        assert capture.grab(timeout=1).width == 640


def test_auto_with_a_dead_display_raises_instead_of_a_test_pattern(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":189")  # named, but no server behind it
    for name in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CaptureError, match=r"tried kms, portal, x11") as info:
        open_capture("auto")
    lines = info.value.details
    assert lines[0].startswith("kms: ")
    assert lines[1] == ("portal: not tried: not a Wayland session"
                        " (WAYLAND_DISPLAY and XDG_SESSION_TYPE unset)")
    assert lines[2].startswith("x11: no X display: set DISPLAY or use --source test")
    assert lines[3] == "test: not used: X display ':189' is named, so there is a screen to fix"
    assert "--source test" in info.value.hint


def test_auto_picks_x11_when_the_display_works(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    with open_capture("auto") as capture:
        assert capture.name == "x11"
        assert (capture.width, capture.height) == (xvfb.width, xvfb.height)


def test_probe_captures_lists_all_four_in_order(xvfb, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb.display)
    probes = probe_captures(width=640, height=480)
    assert [p.name for p in probes] == ["kms", "portal", "x11", "test"]
    assert not probes[0].ok and probes[0].reason
    assert probes[1].reason  # works or not depending on the session bus; always says why
    assert probes[2].ok and "MIT-SHM" in probes[2].reason
    assert probes[3] == BackendProbe("test", True, "640x480 BGRX, 60 fps scrolling pattern")
    # Naming a display is a choice of screen, which the test pattern cannot honour.
    assert probe_captures(display=xvfb.display)[3] == BackendProbe(
        "test", False, "passed over: it does not take display")
    assert probe_captures(display=xvfb.display)[1] == BackendProbe(
        "portal", False, "passed over: it does not take display")


def test_a_connected_drm_connector_counts_as_a_screen(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setattr(capture_package, "DRM_SYSFS", tmp_path)  # a sysfs tree of our own
    for connector, status in [("card0-HDMI-A-1", "disconnected\n"), ("card0-DP-2", "connected\n")]:
        (tmp_path / connector).mkdir()
        (tmp_path / connector / "status").write_text(status)
    assert screen_evidence() == "DRM connector card0-DP-2 is connected"
    with pytest.raises(CaptureError, match="tried kms, portal, x11") as info:
        open_capture("auto")
    assert info.value.details[-1] == (
        "test: not used: DRM connector card0-DP-2 is connected, so there is a screen to fix")
    (tmp_path / "card0-DP-2" / "status").write_text("disconnected\n")
    assert screen_evidence() is None


def test_auto_passes_over_backends_that_cannot_take_a_selecting_option(xvfb, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with open_capture("auto", display=xvfb.display, region=(0, 0, 64, 48)) as capture:
        assert capture.name == "x11" and (capture.width, capture.height) == (64, 48)
    with pytest.raises(CaptureError, match="tried kms, portal, x11") as info:
        open_capture("auto", display=":189", region=(0, 0, 64, 48))
    assert info.value.details[0] == "kms: passed over: it does not take display, region"
    assert info.value.details[1].startswith("portal: not tried")
    # Options that do not select (fps, width) still go only where they fit.
    with open_capture("auto", display=xvfb.display, fps=30, width=640) as capture:
        assert capture.name == "x11"


def test_auto_without_a_screen_lists_all_three_when_the_pattern_fails_too(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    if screen_evidence() is not None:
        pytest.skip(f"this machine has a screen: {screen_evidence()}")
    with pytest.raises(CaptureError, match=r"tried kms, portal, x11, test\)") as info:
        open_capture("auto", width=100, height=100)
    assert [line.split(":")[0] for line in info.value.details] == ["kms", "portal", "x11",
                                                                  "test"]
    assert info.value.details[3].startswith("test: test pattern size is out of range")
