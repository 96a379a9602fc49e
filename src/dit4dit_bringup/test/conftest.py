"""
Keep every DDS participant of these tests on loopback and off the default domain.

`make test` already exports both variables (and a domain held for the run); this covers a plain
`pytest` run by a developer, which must never multicast on the machine's network.
"""

import os
import random

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(10, 99)))
