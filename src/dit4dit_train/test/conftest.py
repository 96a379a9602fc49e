"""
Keep the DDS participants of these tests on loopback and off the default domain.

`make test` exports both variables (with a domain held for the run); this covers a plain `pytest`
run, which must never discover or multicast beyond this machine.
"""

from dit4dit_common.testing import loopback
from dit4dit_train.bag_types import make_typestore
import pytest

loopback()


@pytest.fixture(scope='module')
def store():
    """Return the typestore synthetic bags are written with (the suite's messages included)."""
    return make_typestore(require=('dit4dit_msgs',))
