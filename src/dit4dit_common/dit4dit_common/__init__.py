"""
Shared pieces below every node package of dit4dit_ros.

The topic registry, robot profiles, time stamps, image conversion, parameter declaration, the
node spec of graph descriptions and the one runner that starts, spins and stops nodes.
"""
