"""
Run the robot graph without ``ros2 launch``: ``python -m dit4dit_bringup.run_graph``.

    python -m dit4dit_bringup.run_graph checkpoint:=runs/g1/checkpoint control_mode:=arm_sdk
    python -m dit4dit_bringup.run_graph checkpoint:=... --processes   # one process per node

Arguments are those of ``g1.launch.py`` (``name:=value``) and the graph is the same description
(``dit4dit_bringup.graph``). By default every node runs in this process on a multi-threaded
executor; ``--processes`` starts one Python process per node and stops them all when one exits or
on SIGINT/SIGTERM.
"""

import argparse
import dataclasses
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

from .graph import g1_graph, G1Arguments


def parse_name_value(items, cls):
    """Parse ``name:=value`` items (values as YAML) into the validated dataclass ``cls``."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for item in items:
        key, sep, value = item.partition(':=')
        if not sep or key not in fields:
            raise ValueError(f'argument {item!r}: use name:=value with name in '
                             f'{", ".join(sorted(fields))}')
        values[key] = yaml.safe_load(value) if value else ''
    return cls(**values)


def parse_arguments(items) -> G1Arguments:
    """Parse ``name:=value`` items (values as YAML) into validated G1Arguments."""
    return parse_name_value(items, G1Arguments)


def ros_arguments(spec, params_file=None):
    """Return the --ros-args list that applies a NodeSpec's name and remappings."""
    args = ['--ros-args', '-r', f'__node:={spec.name}']
    if spec.namespace:
        args += ['-r', f'__ns:=/{spec.namespace.strip("/")}']
    for src, dst in spec.remappings:
        args += ['-r', f'{src}:={dst}']
    if params_file:
        args += ['--params-file', params_file]
    return args


def build_node(spec):
    """Instantiate a NodeSpec's Python node class in this process (rclpy must be initialised)."""
    import importlib

    from rclpy.parameter import Parameter

    module, cls = spec.node_class.split(':')
    node_cls = getattr(importlib.import_module(module), cls)
    overrides = [Parameter(k, value=v) for k, v in spec.parameters.items()]
    return node_cls(parameter_overrides=overrides, cli_args=ros_arguments(spec))


def run_in_process(specs, grace_s=6.0):
    """
    Build every node in this process and spin them together until SIGINT/SIGTERM.

    On the first signal, nodes that can stop gracefully (``request_shutdown``, e.g. the G1
    bridge ramping the arm_sdk weight down) are asked to, and spinning goes on until they report
    ``finished`` (at most ``grace_s``); a second signal stops at once.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    signals = []
    previous = {s: signal.signal(s, lambda signum, frame: signals.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    nodes, executor, deadline = [], MultiThreadedExecutor(), None
    try:
        for spec in specs:
            if not spec.node_class:
                print(f'run_graph: {spec.package}/{spec.executable} ({spec.name}) is not a Python '
                      'node: start it with ros2 run / ros2 launch', flush=True)
                continue
            node = build_node(spec)
            nodes.append(node)
            executor.add_node(node)
        graceful = [n for n in nodes if hasattr(n, 'request_shutdown')]
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
            if signals and deadline is None:
                for node in graceful:
                    node.request_shutdown()
                deadline = time.monotonic() + grace_s
            if deadline is not None and (len(signals) > 1 or time.monotonic() > deadline
                                         or all(getattr(n, 'finished', True) for n in graceful)):
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def run_processes(specs):
    """Start one process per node; stop all when one exits or on a signal; return its code."""
    procs = []
    with tempfile.TemporaryDirectory(prefix='dit4dit_graph_') as tmp:
        for spec in specs:
            params = f'{tmp}/{spec.name}.yaml'
            with open(params, 'w') as f:
                # one file per process: '/**' matches the node whatever its namespace
                yaml.safe_dump({'/**': {'ros__parameters': spec.parameters}}, f)
            if spec.module:
                command = [sys.executable, '-m', spec.module]
            elif shutil.which('ros2'):
                command = ['ros2', 'run', spec.package, spec.executable]
            else:
                print(f'run_graph: skipping {spec.name}: {spec.package} is not a Python node and '
                      'ros2 is not installed', flush=True)
                continue
            procs.append(subprocess.Popen([*command, *ros_arguments(spec, params)]))
        stop = {'signal': False}

        def on_signal(*_):
            stop['signal'] = True
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        code = 0
        try:
            while not stop['signal']:
                done = [p for p in procs if p.poll() is not None]
                if done:
                    code = done[0].returncode
                    break
                signal.sigtimedwait([signal.SIGINT, signal.SIGTERM], 0.2)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        return code


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_bringup run_graph``)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('arguments', nargs='*', help='name:=value (see g1.launch.py)')
    parser.add_argument('--processes', action='store_true', help='one process per node')
    parser.add_argument('--print', action='store_true', help='print the graph and exit')
    args = parser.parse_args(argv)
    try:
        specs = g1_graph(parse_arguments(args.arguments))
    except ValueError as exc:
        parser.error(str(exc))
    if args.print:
        print(yaml.safe_dump([dataclasses.asdict(s) for s in specs], sort_keys=False))
        return 0
    return run_processes(specs) if args.processes else run_in_process(specs)


if __name__ == '__main__':
    sys.exit(main())
