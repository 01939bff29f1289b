"""`rootstream doctor`: which backends work here, and why the others do not."""

from __future__ import annotations

import importlib

import click

# (section title, "module:function"): each stage's probe, reading its registry;
# every one returns BackendProbe records.
SECTIONS = (
    ("capture", "rootstream.capture:probe_captures"),
    ("colour conversion", "rootstream.convert:probe_paths"),
    ("encode", "rootstream.encode:probe_encoders"),
    ("decode", "rootstream.decode:probe_decoders"),
    ("present", "rootstream.present:probe_presenters"),
    ("input injection", "rootstream.input:probe_injectors"),
    ("rumble", "rootstream.input.rumble_link:probe_rumble"),
    ("clipboard", "rootstream.clipboard:probe_clipboard"),
    ("microphone", "rootstream.audio.mic_source:probe_microphone"),
    ("audio capture", "rootstream.audio.capture:probe_audio_captures"),
    ("audio playback", "rootstream.audio.playback:probe_audio_playbacks"),
    ("finding hosts on the LAN", "rootstream.discovery.probe:probe_discovery"),
    ("starting with the session", "rootstream.service_unit:probe_service"),
)


def run_probes():
    """Yield (section, [BackendProbe]) for every stage; a probe that crashes is a row too."""
    from rootstream.backends import BackendProbe

    for title, target in SECTIONS:
        module_name, _, function = target.partition(":")
        try:
            probes = list(getattr(importlib.import_module(module_name), function)())
            wrong = [p for p in probes if not isinstance(p, BackendProbe)]
            if wrong:  # every stage answers in one shape; say so rather than die
                raise TypeError(f"{target} returned {type(wrong[0]).__name__}, not BackendProbe")
        except Exception as exc:  # doctor must report, never die
            probes = [BackendProbe("(all)", False, f"probe failed: {type(exc).__name__}: {exc}")]
        yield title, probes


@click.command()
@click.option("--kms", "kms_steps", is_flag=True,
              help="Also walk every step of DRM/KMS capture once and print what each found.")
@click.option("--record", type=click.Path(file_okay=False), default=None,
              help="With --kms: save every kernel reply here (test data for developers).")
def doctor(kms_steps, record):
    """List every capture, encode, decode, present, input and audio backend,
    whether it works on this machine, and why not; whether hosts can be found
    on the LAN, and whether the host starts with the session."""
    for title, probes in run_probes():
        click.echo(f"{title}:")
        for probe in probes:
            mark = "works" if probe.ok else "no"
            click.echo(f"  {probe.name:8} {mark:5}  {probe.reason}")
    from rootstream.capture.portal_probe import portal_steps

    click.echo("portal capture (Wayland), step by step:")
    for step, ok, found in portal_steps():
        click.echo(f"  {'ok ' if ok else 'FAIL'} {step}: {found}")
    # KMS capture without CAP_SYS_ADMIN on Python: the helper that holds it.
    from rootstream.capture.kms_grant import helper_state

    usable, found = helper_state()
    click.echo(f"kms helper:\n  {'helper':8} {'works' if usable else 'no':5}  {found}")
    if kms_steps:
        from rootstream.capture.kms_steps import probe_steps

        click.echo("kms capture, step by step:")
        for step, ok, found in probe_steps(record_dir=record):
            click.echo(f"  {'ok ' if ok else 'FAIL'} {step}: {found}")
