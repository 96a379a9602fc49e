"""
The policy graph against the G1 tabletop simulation.

    ros2 launch dit4dit_bringup sim.launch.py checkpoint:=DIR [lockstep:=true]

sim_bridge (held-out initial states, one after another) -> policy_node -> action_executor -> sim.
The nodes and parameters come from ``dit4dit_bringup.graph.sim_graph``, the description that
``python -m dit4dit_bringup.evaluate_closed_loop`` runs in one process where ``ros2 launch`` is
not available; the camera renders at the size and rate of the checkpoint's contract. The launch
ends when the simulator has run ``episodes``; if any process dies before, it stops the others and
exits non-zero.
"""


def _setup(context):
    from dit4dit_bringup.graph import sim_graph, SimArguments
    from dit4dit_bringup.launch_support import node_actions, preflight
    from dit4dit_common.node_spec import launch_arguments

    specs = sim_graph(SimArguments(**launch_arguments(SimArguments,
                                                      context.launch_configurations)))
    preflight(specs)
    return node_actions(specs, finishes=['sim_bridge'])


def generate_launch_description():
    """Declare the arguments and build the graph at launch time."""
    from launch import LaunchDescription
    from launch.actions import OpaqueFunction

    from dit4dit_bringup.graph import SIM_DESCRIPTIONS, SimArguments, STRATEGIES
    from dit4dit_bringup.launch_support import declare_arguments

    declared = declare_arguments(SimArguments, SIM_DESCRIPTIONS,
                                 choices={'strategy': STRATEGIES})
    return LaunchDescription(declared + [OpaqueFunction(function=_setup)])
