"""Harnesses the tests and benchmarks drive real parts with; never used by the product.

- ``impair``: a lossy UDP relay (loss, bursts, reordering, duplication, delay);
- ``netns``: a pair of network namespaces joined by a veth link, with tc;
- ``netns_lan``: several namespaces on one bridge, a LAN for discovery tests;
- ``audio_analysis``: finding a tone's timing marks in recorded sound.

They live in the package (not under tests/) because bench/ uses them too;
nothing in the library
imports them (tests/test_architecture.py says so).
"""
