"""
The policy graph against the G1 tabletop simulation.

    ros2 launch dit4dit_bringup sim.launch.py checkpoint:=DIR

sim_bridge (held-out initial states, one after another) -> policy_node -> action_executor -> sim.
The nodes and parameters come from ``dit4dit_bringup.graph.sim_graph``, the description that
``python -m dit4dit_train.evaluate_closed_loop`` runs in one process where ``ros2 launch`` is not
available. The launch ends when the simulator has run ``episodes``.
"""

import dataclasses


def _setup(context):
    from launch.actions import Shutdown
    from launch_ros.actions import Node

    from dit4dit_bringup.graph import launch_arguments, sim_graph, SimArguments

    values = launch_arguments(SimArguments, context.launch_configurations)
    return [Node(package=s.package, executable=s.executable, name=s.name,
                 parameters=[s.parameters], remappings=s.remappings, output='screen',
                 **({'on_exit': Shutdown()} if s.name == 'sim_bridge' else {}))
            for s in sim_graph(SimArguments(**values))]


def generate_launch_description():
    """Declare the arguments and build the graph at launch time."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from dit4dit_bringup.graph import launch_default, SIM_DESCRIPTIONS, SimArguments

    declared = [DeclareLaunchArgument(f.name, default_value=launch_default(f.default),
                                      description=SIM_DESCRIPTIONS[f.name])
                for f in dataclasses.fields(SimArguments)]
    return LaunchDescription(declared + [OpaqueFunction(function=_setup)])
