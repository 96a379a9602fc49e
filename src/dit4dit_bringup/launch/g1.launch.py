"""
Bring up DiT4DiT on a Unitree G1: ``ros2 launch dit4dit_bringup g1.launch.py checkpoint:=DIR``.

policy_node -> action_executor -> g1_bridge (+ rviz2 with ``rviz:=true``). The node list and their
parameters come from ``dit4dit_bringup.graph`` (the same description ``run_graph`` runs where
``ros2 launch`` is not available), so the two never disagree.
"""

import dataclasses


def _setup(context):
    from launch.actions import ExecuteProcess
    from launch_ros.actions import Node

    from dit4dit_bringup.graph import g1_graph, G1Arguments, launch_arguments

    args = G1Arguments(**launch_arguments(G1Arguments, context.launch_configurations))
    actions = [Node(package=s.package, executable=s.executable, name=s.name,
                    namespace=s.namespace or None, parameters=[s.parameters],
                    remappings=s.remappings, output='screen')
               for s in g1_graph(args)]
    if args.rviz:
        from ament_index_python.packages import get_package_share_directory
        rviz = f'{get_package_share_directory("dit4dit_bringup")}/config/dit4dit.rviz'
        actions.append(ExecuteProcess(cmd=['rviz2', '-d', rviz], output='screen'))
    return actions


def generate_launch_description():
    """Declare the arguments (with choices) and build the graph at launch time."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from dit4dit_bringup.graph import (
        CONTROL_MODES, DESCRIPTIONS, G1Arguments, HARDWARE, launch_default, STRATEGIES)

    declared = []
    for f in dataclasses.fields(G1Arguments):
        choices = {'control_mode': CONTROL_MODES, 'hardware': HARDWARE,
                   'strategy': STRATEGIES}.get(f.name)
        declared.append(DeclareLaunchArgument(
            f.name, default_value=launch_default(f.default), description=DESCRIPTIONS[f.name],
            **({'choices': list(choices)} if choices else {})))
    return LaunchDescription(declared + [OpaqueFunction(function=_setup)])
