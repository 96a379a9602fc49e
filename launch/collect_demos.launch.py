"""
Collect scripted demonstrations in the G1 tabletop simulation: sim + expert + recorder.

    ros2 launch launch/collect_demos.launch.py output:=bags/reach_000 task:=reach episodes:=50

The nodes and their parameters come from ``dit4dit_bringup.graph.collect_graph`` (the same
description ``python -m dit4dit_train.collect_demos`` runs in one process where ``ros2 launch``
is not available). ``use_ros2_bag:=true`` records with ``ros2 bag record`` and the ``sim`` preset
instead of the ``bag_recorder`` node. The launch ends when ``sim_bridge`` has run ``episodes``.
Convert with ``python -m dit4dit_train.convert BAG --map g1_tabletop --output DATASET``.

The ``launch`` imports live inside the functions so that tests can import this file without it.
"""

import dataclasses

FLUSH_TIMEOUT_S = '30.0'   # time a recorder gets to close the bag after SIGINT


def _setup(context):
    from launch.actions import ExecuteProcess, Shutdown
    from launch_ros.actions import Node

    from dit4dit_bringup.graph import collect_graph, CollectArguments, launch_arguments
    from dit4dit_train.recording import load_preset, ros2_bag_record_command

    args = CollectArguments(**launch_arguments(CollectArguments,
                                               context.launch_configurations))
    ros2_bag = context.launch_configurations['use_ros2_bag'].lower() == 'true'
    actions = []
    for spec in collect_graph(args):
        if spec.name == 'bag_recorder' and ros2_bag:
            actions.append(ExecuteProcess(
                cmd=ros2_bag_record_command(load_preset('sim'), args.output, args.storage),
                name='ros2_bag_record', output='screen', sigterm_timeout=FLUSH_TIMEOUT_S))
            continue
        extra = {'on_exit': Shutdown()} if spec.name == 'sim_bridge' else {}
        actions.append(Node(package=spec.package, executable=spec.executable, name=spec.name,
                            parameters=[spec.parameters], remappings=spec.remappings,
                            output='screen', sigterm_timeout=FLUSH_TIMEOUT_S, **extra))
    return actions


def generate_launch_description():
    """Declare the arguments and build the collection graph at launch time."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from dit4dit_bringup.graph import COLLECT_DESCRIPTIONS, CollectArguments, launch_default

    declared = [DeclareLaunchArgument(
        f.name, default_value=launch_default(f.default), description=COLLECT_DESCRIPTIONS[f.name])
        for f in dataclasses.fields(CollectArguments)]
    declared.append(DeclareLaunchArgument(
        'use_ros2_bag', default_value='false', choices=['true', 'false'],
        description='record with ros2 bag record instead of the bag_recorder node'))
    return LaunchDescription(declared + [OpaqueFunction(function=_setup)])
