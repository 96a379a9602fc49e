"""
The policy graph against LIBERO, on one task's official initial states.

    ros2 launch dit4dit_bringup libero.launch.py checkpoint:=DIR task:=libero_spatial/0 \
        [episodes:=50] [first_index:=0] [device:=cuda:0]

sim_bridge (LIBERO in lockstep: each control step waits for its command) -> policy_node (a query
every ``actions_per_query`` steps) -> lockstep_executor (one action per observation, open loop)
-> sim. The nodes and parameters come from ``dit4dit_bringup.graph.libero_graph``, which
``python -m dit4dit_bringup.evaluate_closed_loop --env libero`` runs task after task in one
process (with the results table). The launch ends when the simulator has run ``episodes``; if any
process dies before, it stops the others and exits non-zero.
"""


def _setup(context):
    from dit4dit_bringup.graph import libero_graph, LiberoArguments
    from dit4dit_bringup.launch_support import node_actions, preflight
    from dit4dit_common.node_spec import launch_arguments

    specs = libero_graph(LiberoArguments(**launch_arguments(LiberoArguments,
                                                            context.launch_configurations)))
    preflight(specs)
    return node_actions(specs, finishes=['sim_bridge'])


def generate_launch_description():
    """Declare the arguments and build the graph at launch time."""
    from launch import LaunchDescription
    from launch.actions import OpaqueFunction

    from dit4dit_bringup.graph import LIBERO_DESCRIPTIONS, LiberoArguments
    from dit4dit_bringup.launch_support import declare_arguments

    declared = declare_arguments(LiberoArguments, LIBERO_DESCRIPTIONS)
    return LaunchDescription(declared + [OpaqueFunction(function=_setup)])
