"""Scripted experts (privileged state, ROS-free): the tabletop IK expert, the LIBERO oracle."""
