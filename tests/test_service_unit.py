"""`rootstream service`: the systemd user unit, checked by systemd's own verifier.

`systemd-analyze verify --user` loads the unit as the user manager would
(without running one): unbalanced quotes, a bare ";" splitting the command,
or a missing executable are errors there.  The tests run with a private
XDG_CONFIG_HOME and XDG_RUNTIME_DIR and no session bus, so no real user
manager is ever touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from rootstream.service_unit import (
    UNIT_NAME,
    exec_line,
    read_host_args,
    render_unit,
    split_exec_line,
)

# Options as a user might type them: spaces, both quotes, a backslash, systemd's
# own specials (% specifiers, $ variables, a lone ;), an empty word, non-ASCII.
AWKWARD = ["--name", 'Living room "big" PC', "--stats-json", "/tmp/it's here/x.json",
           "--output", "HDMI-A-1", "--display", r"back\slash", "--bind", "0.0.0.0",
           "100%", "$HOME", "${HOME}", ";", "", "tab\there", "café", "a;b"]
# Host options `rootstream host` accepts, with the same awkward characters.
VALID = ["--name", 'Living room "big" PC; 100% $HOME', "--stats-json",
         "/tmp/it's here/stats.json", "--fps", "60", "--source", "test"]


def _verify_tool() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:  # scripts/setup.sh installs it: its absence is a broken setup
        pytest.fail("systemd-analyze is missing: apt-get install systemd (scripts/setup.sh)")
    return tool


@pytest.fixture
def env(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    values = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"),
                  XDG_RUNTIME_DIR=str(runtime))
    values.pop("DBUS_SESSION_BUS_ADDRESS", None)
    return values


def _verify(path, env) -> subprocess.CompletedProcess:
    return subprocess.run([_verify_tool(), "verify", "--user", "--man=no", str(path)],
                          capture_output=True, text=True, timeout=60, env=env)


def _cli(*args: str, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rootstream_cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_awkward_arguments_round_trip_through_the_exec_line():
    line = exec_line(AWKWARD)
    assert split_exec_line(line) == AWKWARD
    assert "%%" in line and "$$HOME" in line and '";"' in line


@pytest.mark.parametrize("arg", AWKWARD)
def test_each_argument_alone_round_trips(arg):
    assert split_exec_line(exec_line(["x", arg, "y"])) == ["x", arg, "y"]


def test_the_rendered_unit_passes_systemd_analyze_verify(tmp_path, env):
    path = tmp_path / UNIT_NAME
    path.write_text(render_unit(AWKWARD))
    done = _verify(path, env)
    assert done.returncode == 0, done.stderr
    assert read_host_args(path.read_text()) == AWKWARD


@pytest.mark.parametrize("bad_exec", [
    f'{sys.executable} -c "unbalanced',
    f"{sys.executable} -c pass ; {sys.executable}",  # a bare ; is a second command
])
def test_verify_catches_what_bad_quoting_would_write(tmp_path, env, bad_exec):
    """The check above can fail: systemd rejects these lines."""
    path = tmp_path / UNIT_NAME
    text = "\n".join(f"ExecStart={bad_exec}" if line.startswith("ExecStart=") else line
                     for line in render_unit([]).splitlines())
    path.write_text(text + "\n")
    assert _verify(path, env).returncode != 0


def test_install_status_uninstall(env, tmp_path):
    done = _cli("service", "install", *VALID, env=env)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "config" / "systemd" / "user" / UNIT_NAME
    assert f"wrote {path}" in done.stdout
    # No user manager answers in this environment: it says what to run instead.
    assert "systemctl --user daemon-reload" in done.stdout
    assert f"systemctl --user enable --now {UNIT_NAME}" in done.stdout
    text = path.read_text()
    assert "PartOf=graphical-session.target" in text
    assert "After=graphical-session.target" in text
    assert "WantedBy=graphical-session.target" in text
    assert "Restart=on-failure" in text
    assert read_host_args(text) == VALID
    assert _verify(path, env).returncode == 0

    status = _cli("service", "status", env=env)
    assert status.returncode == 0
    assert f"installed: {path}" in status.stdout
    import shlex

    shown = status.stdout.split("host options: ", 1)[1].splitlines()[0]
    assert shlex.split(shown) == VALID

    doctor_rows = _cli("doctor", env=env).stdout
    assert "starting with the session:" in doctor_rows and "installed:" in doctor_rows
    assert "finding hosts on the LAN:" in doctor_rows

    gone = _cli("service", "uninstall", env=env)
    assert gone.returncode == 0 and f"removed {path}" in gone.stdout
    assert not path.exists()
    assert "not installed" in _cli("service", "status", env=env).stdout


def test_install_refuses_options_the_host_would_refuse(env, tmp_path):
    done = _cli("service", "install", "--fps", "lots", env=env)
    assert done.returncode == 2
    assert "--fps" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "config" / "systemd").exists()
