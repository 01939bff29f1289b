"""Finding rootstream hosts on the LAN: DNS-SD over multicast DNS.

A host announces one ``_rootstream._udp`` service (``announce``); a client
browses for a moment and lists what answered (``browse``), then picks one by
name or fingerprint (``choose``).  Everything here is out of band: the
stream's own protocol is untouched, and an announcement is never trusted for
anything but an address -- the handshake still checks the host's key against
the trust store, so a forged announcement can at worst point at a machine
that then fails the handshake.
"""

SERVICE_TYPE = "_rootstream._udp.local."
TXT_VERSION = "1"
