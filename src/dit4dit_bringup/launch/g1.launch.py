"""
Bring up DiT4DiT on a Unitree G1: ``ros2 launch dit4dit_bringup g1.launch.py checkpoint:=DIR``.

policy_node -> action_executor -> g1_bridge (+ robot_state_publisher and the commanded ghost with
``urdf:=``, rviz2 with ``rviz:=true``); ``hardware:=sim`` adds the G1 twin (``dit4dit_sim``: MuJoCo
physics behind Unitree's LowState/LowCmd/HandCmd, ``task:=reach|push``) and changes nothing else.
The node list and their parameters come from ``dit4dit_bringup.graph`` (the same description
``run_graph`` runs where ``ros2 launch`` is not available), so the two never disagree. Before
anything starts, the checkpoint's contract is checked against the G1 description and every
executable must be installed; a failure there starts nothing.
Every process is required: if one dies the launch stops them all and exits non-zero. Ctrl-C (or
SIGTERM) lets the bridge finish its arm_sdk ramp-down before anything is killed.
"""


def _setup(context):
    from launch.actions import ExecuteProcess

    from dit4dit_bringup.graph import config_dir, g1_graph, G1Arguments
    from dit4dit_bringup.launch_support import node_actions, preflight
    from dit4dit_common.node_spec import launch_arguments

    args = G1Arguments(**launch_arguments(G1Arguments, context.launch_configurations))
    specs = g1_graph(args)
    preflight(specs, extra=['rviz2'] if args.rviz else [])
    actions = node_actions(specs)
    if args.rviz:
        actions.append(ExecuteProcess(cmd=['rviz2', '-d', str(config_dir() / 'dit4dit.rviz')],
                                      output='screen'))
    return actions


def generate_launch_description():
    """Declare the arguments (with choices) and build the graph at launch time."""
    from launch import LaunchDescription
    from launch.actions import OpaqueFunction

    from dit4dit_bringup.graph import (
        CONTROL_MODES, DESCRIPTIONS, G1Arguments, HARDWARE, SIM_TASKS, STRATEGIES)
    from dit4dit_bringup.launch_support import declare_arguments

    declared = declare_arguments(G1Arguments, DESCRIPTIONS, choices={
        'control_mode': CONTROL_MODES, 'hardware': HARDWARE, 'strategy': STRATEGIES,
        'task': SIM_TASKS})
    return LaunchDescription(declared + [OpaqueFunction(function=_setup)])
