"""
Cross-package checks of dit4dit_ros (the package holds only tests).

Layering, DDS round trips, wire layout, topic and parameter consistency, stopping under signals.
"""
