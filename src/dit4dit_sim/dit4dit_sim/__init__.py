"""
Simulation for dit4dit_ros.

Environments behind one interface (``envs``), the ``sim_bridge`` node that speaks the robot's
topics, scripted experts (``experts``, and their nodes) and expert parity.
"""
