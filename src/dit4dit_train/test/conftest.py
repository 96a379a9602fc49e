"""
Keep the DDS participants of these tests on loopback and off the default domain.

`make test` exports both variables (with a domain held for the run); this covers a plain `pytest`
run, which must never discover or multicast beyond this machine.
"""

import os
import random

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(10, 99)))
