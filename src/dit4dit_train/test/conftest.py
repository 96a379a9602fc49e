"""
Keep the DDS participants of these tests on loopback and off the default domain.

`make test` exports both variables (with a domain held for the run); this covers a plain `pytest`
run, which must never discover or multicast beyond this machine.
"""

from dit4dit_common.testing import loopback

loopback()
