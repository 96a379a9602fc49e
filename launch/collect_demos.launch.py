"""
Collect scripted demonstrations in the G1 tabletop simulation: sim + expert + recorder.

    ros2 launch launch/collect_demos.launch.py output:=bags/reach_000 task:=reach episodes:=50

The nodes and their parameters come from ``dit4dit_bringup.graph.collect_graph`` (the same
description ``python -m dit4dit_bringup.collect_demos`` runs in one process where ``ros2 launch``
is not available). ``use_ros2_bag:=true`` records with ``ros2 bag record`` and the ``sim`` preset
instead of the ``bag_recorder`` node (``ros2 bag`` must then be installed: checked before anything
starts). The recorder is required: if it dies (an existing output, a full disk) the launch stops
the simulation at once and exits non-zero, so no collection runs unrecorded. The launch ends when
``sim_bridge`` has run ``episodes``; the recorder then gets its flush budget to close the bag.
Convert with ``python -m dit4dit_train.convert BAG --map g1_tabletop --output DATASET``.

The ``launch`` imports live inside the functions so that tests can import this file without it.
"""


def _setup(context):
    from launch.actions import ExecuteProcess

    from dit4dit_bringup.graph import collect_graph, CollectArguments
    from dit4dit_bringup.launch_support import node_actions, on_exit, preflight
    from dit4dit_common.node_spec import launch_arguments
    from dit4dit_train.recording import (
        CLOSE_BUDGET_S, load_preset, ros2_bag_available, ros2_bag_record_command)

    args = CollectArguments(**launch_arguments(CollectArguments,
                                               context.launch_configurations))
    ros2_bag = context.launch_configurations['use_ros2_bag'].lower() == 'true'
    specs = collect_graph(args)
    if ros2_bag:
        specs = [s for s in specs if s.name != 'bag_recorder']
        problem = ros2_bag_available(args.storage)
        if problem:
            raise RuntimeError(f'use_ros2_bag:=true but {problem}; nothing was started '
                               '(use_ros2_bag:=false records with the bag_recorder node)')
    preflight(specs)
    actions = node_actions(specs, finishes=['sim_bridge'])
    if ros2_bag:
        actions.append(ExecuteProcess(
            cmd=ros2_bag_record_command(load_preset('sim'), args.output, args.storage),
            name='ros2_bag_record', output='screen', sigterm_timeout=str(CLOSE_BUDGET_S),
            on_exit=on_exit('ros2_bag_record', finishes=False)))
    return actions


def generate_launch_description():
    """Declare the arguments and build the collection graph at launch time."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from dit4dit_bringup.graph import COLLECT_DESCRIPTIONS, CollectArguments
    from dit4dit_bringup.launch_support import declare_arguments

    declared = declare_arguments(CollectArguments, COLLECT_DESCRIPTIONS)
    declared.append(DeclareLaunchArgument(
        'use_ros2_bag', default_value='false', choices=['true', 'false'],
        description='record with ros2 bag record instead of the bag_recorder node'))
    return LaunchDescription(declared + [OpaqueFunction(function=_setup)])
