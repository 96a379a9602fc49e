"""
Keep every DDS participant of these tests on loopback and off the default domain.

`make test` already exports both variables (and a domain held for the run); this covers a plain
`pytest` run by a developer, which must never multicast on the machine's network.
"""

from dit4dit_common.testing import context, loopback  # noqa: F401 (context: a fixture)

loopback()
