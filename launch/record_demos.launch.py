"""
Record demonstrations to a rosbag2 bag, with ``ros2 bag record`` or the ``bag_recorder`` node.

    ros2 launch launch/record_demos.launch.py preset:=g1 output:=demos/g1_run_001
    ros2 launch launch/record_demos.launch.py preset:=sim storage:=sqlite3 use_ros2_bag:=false

Both ways read the topics and their QoS from the same preset
(``dit4dit_train/config/record_<preset>.yaml``): ``use_ros2_bag:=true`` (default) runs
``ros2 bag record`` with the preset's topics and a generated ``--qos-profile-overrides-path``
file; ``false`` runs ``bag_recorder`` from dit4dit_train with the preset as its parameter. If the
chosen recorder is not installed, nothing starts and the launch fails naming the other way. Ctrl-C
ends the recording and closes the bag (the recorder gets its flush budget before any SIGTERM); the
launch ends when the recorder does, non-zero if the recorder failed. Needs a full ROS 2 install
(``launch``, ``launch_ros``); without one run ``bag_recorder`` directly (see docs/recording.md).

The ``launch`` imports live inside the functions so that tests can import this file without it.
"""

ARGUMENTS = (
    ('output', '', None, 'Bag directory to create (must not exist); default: '
     'rosbag2_<date>-<time> in the working directory.'),
    ('storage', 'mcap', ('mcap', 'sqlite3'), 'rosbag2 storage plugin.'),
    ('preset', 'g1', ('g1', 'sim'), 'Recording preset: the real G1 or the tabletop simulation.'),
    ('use_ros2_bag', 'true', ('true', 'false'),
     'true: ros2 bag record; false: the bag_recorder node of dit4dit_train.'),
)


def _record(context, *args, **kwargs):
    """Return the recorder action for the launch arguments' values."""
    from launch.actions import ExecuteProcess
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from dit4dit_bringup.launch_support import executable_installed, on_exit
    from dit4dit_train.recording import (
        CLOSE_BUDGET_S,
        default_output_name,
        load_preset,
        recorder_parameters,
        ros2_bag_available,
        ros2_bag_record_command,
    )

    def value(name):
        return LaunchConfiguration(name).perform(context).strip()

    preset = load_preset(value('preset'))
    output = value('output') or default_output_name()
    storage = value('storage')
    budget = str(CLOSE_BUDGET_S)
    if value('use_ros2_bag').lower() == 'true':
        problem = ros2_bag_available(storage)
        if problem:
            raise RuntimeError(f'use_ros2_bag:=true but {problem}; nothing was started. '
                               'Record with the bag_recorder node instead: use_ros2_bag:=false')
        return [ExecuteProcess(
            cmd=ros2_bag_record_command(preset, output, storage), name='ros2_bag_record',
            output='screen', sigterm_timeout=budget,
            on_exit=on_exit('ros2_bag_record', finishes=True))]
    problem = executable_installed('dit4dit_train', 'bag_recorder')
    if problem:
        raise RuntimeError(f'use_ros2_bag:=false but {problem}; nothing was started')
    return [Node(
        package='dit4dit_train', executable='bag_recorder', name='bag_recorder',
        output='screen', parameters=[recorder_parameters(preset, output, storage)],
        sigterm_timeout=budget, on_exit=on_exit('bag_recorder', finishes=True))]


def generate_launch_description():
    """Return the launch description: the declared arguments and the chosen recorder."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    declared = []
    for name, default, choices, description in ARGUMENTS:
        extra = {'choices': list(choices)} if choices else {}
        declared.append(DeclareLaunchArgument(
            name, default_value=default, description=description, **extra))
    return LaunchDescription(declared + [OpaqueFunction(function=_record)])
