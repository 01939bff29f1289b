"""Turn the hosts a browse found, and what the user typed, into one host."""

from __future__ import annotations

from dataclasses import replace

from rootstream.discovery.browse import FoundHost
from rootstream.errors import NetworkError

# A client keeps each host it paired with as "host <label>" (crypto.client_keys).
_HOST_PREFIX = "host "


def mark_paired(found: list[FoundHost], peers) -> list[FoundHost]:
    """``found`` with ``paired_as`` filled in from the trust store, paired hosts
    first, then by name: the host a user most likely wants heads the list."""
    labels = {p.fingerprint: p.name[len(_HOST_PREFIX):] for p in peers
              if p.name.startswith(_HOST_PREFIX)}
    marked = [replace(h, paired_as=labels.get(h.fingerprint, "")) for h in found]
    return sorted(marked, key=lambda h: (not h.paired_as, h.name.casefold(), h.fingerprint))


def describe(host: FoundHost) -> str:
    """One line of the listing: name, address, fingerprint, and whether paired."""
    paired = f"paired as {host.paired_as}" if host.paired_as else "not paired"
    return f"{host.name:24} {host.endpoint():21} {host.fingerprint}  {paired}"


def choose(found: list[FoundHost], wanted: str) -> FoundHost:
    """The one host named ``wanted`` (its announced name, the label it was paired
    under, or its fingerprint).  Two identities under one name is an error that
    shows both fingerprints: picking either would be a guess."""
    from rootstream.crypto.identity import normalise_fingerprint

    by_fingerprint = [h for h in found if h.fingerprint == normalise_fingerprint(wanted)]
    matches = by_fingerprint or [h for h in found if wanted in (h.name, h.paired_as)]
    identities = {h.fingerprint: h for h in matches}
    if len(identities) > 1:
        raise NetworkError(
            f"{len(identities)} hosts claim the name {wanted!r}",
            hint="pass the fingerprint of the one you mean (compare it with the one the "
                 "host prints at start)",
            details=[describe(h) for h in identities.values()])
    if not identities:
        raise NetworkError(
            f"no host named {wanted!r} answered on the LAN",
            hint="check that it runs `rootstream host` (without --no-announce), or give "
                 "its address",
            details=[describe(h) for h in found] or ["no rootstream host answered at all"])
    return matches[0]


def default_choice(found: list[FoundHost], *, pairing: bool) -> FoundHost | None:
    """The host to take without asking: the only paired one found (to connect),
    or the only one found (to pair, or to connect and be told to pair first).
    None when the user must choose."""
    paired = [h for h in found if h.paired_as]
    if not pairing and len(paired) == 1:
        return paired[0]
    if len(found) == 1 and (pairing or not paired):
        return found[0]
    return None


def label_for(host: FoundHost, peers) -> str:
    """The trust-store label to pair with or connect to ``host`` under.

    The label it was paired under; else its announced name, unless another
    identity is already paired under that name -- then its fingerprint, so a
    second "gamebox" is never checked against the first one's key.
    """
    if host.paired_as:
        return host.paired_as
    taken = {p.name[len(_HOST_PREFIX):] for p in peers if p.name.startswith(_HOST_PREFIX)}
    return host.fingerprint if host.name in taken else host.name
