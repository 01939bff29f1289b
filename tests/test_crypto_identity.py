"""Identities on disk (0700 dir, 0600 files) and the trust store."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rootstream.crypto._files import config_dir
from rootstream.crypto.identity import Identity, fingerprint, normalise_fingerprint
from rootstream.crypto.trust import TrustStore
from rootstream.errors import CryptoError, PairingError

HOST_SECRET = bytes(range(32))
# Pinned in docs/SECURITY.md.
HOST_PUBLIC = "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"
HOST_FINGERPRINT = "HJQQ-NMPQ-ULSP-SO2T"


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_public_key_and_fingerprint_vector():
    identity = Identity(HOST_SECRET)
    assert identity.public_key.hex() == HOST_PUBLIC
    assert identity.fingerprint() == HOST_FINGERPRINT == fingerprint(identity.public_key)
    assert normalise_fingerprint("hjqqnmpq ulsp-so2t") == HOST_FINGERPRINT


def test_repr_never_shows_the_secret():
    identity = Identity(HOST_SECRET)
    assert HOST_SECRET.hex() not in repr(identity)
    assert repr(identity) == f"Identity({HOST_FINGERPRINT})"


def test_created_on_first_run_loaded_on_the_next(tmp_path):
    directory = tmp_path / "cfg" / "rootstream"
    first = Identity.load_or_create(directory)
    assert _mode(directory) == 0o700
    assert _mode(directory / "identity.key") == 0o600
    second = Identity.load_or_create(directory)
    assert second.public_key == first.public_key
    assert [p.name for p in directory.iterdir()] == ["identity.key"]  # no temp files left


def test_existing_wide_directory_is_tightened(tmp_path):
    directory = tmp_path / "rootstream"
    directory.mkdir(mode=0o755)
    Identity.load_or_create(directory)
    assert _mode(directory) == 0o700


def test_key_readable_by_others_is_refused(tmp_path):
    Identity.load_or_create(tmp_path)
    os.chmod(tmp_path / "identity.key", 0o644)
    with pytest.raises(CryptoError, match="readable by other users") as info:
        Identity.load_or_create(tmp_path)
    assert "chmod 600" in info.value.hint


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"rootstream-identity-v1 !!!\n",
                                     b"rootstream-identity-v1 AAAA\n"])
def test_corrupt_identity_file(tmp_path, content):
    path = tmp_path / "identity.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(CryptoError, match="identity file is corrupt"):
        Identity.load_or_create(tmp_path)


def test_default_location_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_dir() == tmp_path / "rootstream"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == tmp_path / "home" / ".config" / "rootstream"


def test_trust_store_add_list_forget(tmp_path):
    store = TrustStore.open(tmp_path)
    laptop, desk = Identity.generate(), Identity.generate()
    store.add("laptop", laptop.public_key, paired_at=1_700_000_000)
    store.add("desk", desk.public_key, paired_at=1_700_000_100)
    assert _mode(tmp_path / "trusted_peers.json") == 0o600
    assert store.is_trusted(laptop.public_key)
    reopened = TrustStore.open(tmp_path)
    assert [(p.name, p.public_key, p.paired_at) for p in reopened.list()] == [
        ("laptop", laptop.public_key, 1_700_000_000),
        ("desk", desk.public_key, 1_700_000_100),
    ]
    assert reopened.forget(laptop.fingerprint().lower()).name == "laptop"
    assert reopened.forget("desk").public_key == desk.public_key
    assert not TrustStore.open(tmp_path).list()
    with pytest.raises(PairingError, match="no paired peer"):
        reopened.forget("desk")


def test_repairing_a_key_replaces_its_entry(tmp_path):
    store = TrustStore.open(tmp_path)
    key = Identity.generate().public_key
    store.add("old name", key, paired_at=1)
    store.add("new name", key, paired_at=2)
    assert [(p.name, p.paired_at) for p in store.list()] == [("new name", 2)]


def test_ambiguous_name_must_be_forgotten_by_fingerprint(tmp_path):
    store = TrustStore.open(tmp_path)
    a, b = Identity.generate(), Identity.generate()
    store.add("laptop", a.public_key)
    store.add("laptop", b.public_key)
    with pytest.raises(PairingError, match="several paired peers") as info:
        store.forget("laptop")
    assert len(info.value.details) == 2
    store.forget(b.fingerprint())
    assert store.find("laptop").public_key == a.public_key


def test_writes_from_two_processes_do_not_undo_each_other(tmp_path):
    first, second = TrustStore.open(tmp_path), TrustStore.open(tmp_path)
    first.add("one", Identity.generate().public_key)
    second.add("two", Identity.generate().public_key)
    assert [p.name for p in TrustStore.open(tmp_path).list()] == ["one", "two"]


@pytest.mark.parametrize("name", ["", "x" * 65, "bell\x07", "new\nline"])
def test_bad_peer_names(tmp_path, name):
    with pytest.raises(PairingError, match="peer name is not valid"):
        TrustStore.open(tmp_path).add(name, Identity.generate().public_key)


def test_hand_edited_key_is_detected(tmp_path):
    store = TrustStore.open(tmp_path)
    store.add("laptop", Identity.generate().public_key)
    path = tmp_path / "trusted_peers.json"
    doc = json.loads(path.read_text())
    doc["peers"][0]["public_key"] = Identity.generate().public_key.hex()
    path.write_text(json.dumps(doc))
    with pytest.raises(CryptoError, match="trust store is corrupt"):
        TrustStore.open(tmp_path)


@pytest.mark.parametrize("text", ["", "[]", '{"version": 2, "peers": []}',
                                  '{"version": 1, "peers": {}}', '{"version": 1, "peers": [{}]}'])
def test_corrupt_trust_store(tmp_path, text):
    path = tmp_path / "trusted_peers.json"
    path.write_text(text)
    os.chmod(path, 0o600)
    with pytest.raises(CryptoError, match="trust store is corrupt"):
        TrustStore.open(tmp_path)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["version", "peers", "name", "public_key", "fingerprint", "paired_at"]),
        inner, max_size=6),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=80),
                         st.binary(max_size=60).map(lambda b: b"rootstream-identity-v1 " + b)))
def test_fuzz_identity_file_only_raises_crypto_error(tmp_path, content):
    path = tmp_path / "identity.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    try:
        Identity.load_or_create(tmp_path)
    except CryptoError:
        pass


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(_json_values, st.fixed_dictionaries(
    {"version": st.just(1), "peers": st.lists(_json_values, max_size=2)})))
def test_fuzz_trust_store_only_raises_crypto_error(tmp_path, doc):
    path = tmp_path / "trusted_peers.json"
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)
    try:
        TrustStore.open(tmp_path)
    except CryptoError:
        pass
