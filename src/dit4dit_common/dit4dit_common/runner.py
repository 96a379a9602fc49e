"""
The one way every process of the suite starts, spins and stops.

Stopping must not depend on how the signal comes: one SIGINT (``timeout -s INT``, ``kill``), two
(Ctrl-C in a terminal reaches the whole process group, and ``ros2 launch`` forwards its own), or
SIGTERM (``ros2 launch`` escalating, systemd). So rclpy installs no signal handler here; SIGINT
and SIGTERM only record that a stop was asked for, and the stop itself runs in the normal flow of
the program:

* nodes with ``request_shutdown()`` are asked to stop and spun until their ``finished`` turns True
  or their ``shutdown_budget_s`` (derived from their own parameters, e.g. the G1 bridge's ramp-down
  time) has passed. Later signals are reported and do not cut this short: a half-finished arm_sdk
  ramp or an unclosed bag is worse than one more second. Only SIGKILL abandons it.
* then every node is destroyed and the context shut down; no traceback for a requested stop.
* a node that cannot be built (bad parameters, a checkpoint that does not fit) is reported in one
  line and the process exits 2; a node may set ``exit_code`` (e.g. the recorder after a failed
  write).
"""

import signal
import sys
import time
import typing

SIGNALS = (signal.SIGINT, signal.SIGTERM)
SPIN_PERIOD_S = 0.05


class StopRequest:
    """SIGINT/SIGTERM recorded as a request to stop (installed by ``with StopRequest():``)."""

    def __init__(self, name: str = ''):
        """Record nothing yet; ``name`` prefixes the lines printed on later signals."""
        self.name = name or 'dit4dit'
        self.signals: typing.List[int] = []
        self.note = ''          # what a later signal is told (who is stopping, for how long)
        self._previous = {}

    def __enter__(self):
        """Install the handlers."""
        self._previous = {s: signal.signal(s, self._on_signal) for s in SIGNALS}
        return self

    def __exit__(self, *exc):
        """Restore the previous handlers."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False

    def _on_signal(self, signum, frame):
        self.signals.append(signum)
        if len(self.signals) > 1:
            # print, not a ROS logger: the handler may run inside the logger's own call
            print(f'[{self.name}] {signal.Signals(signum).name} again: still stopping'
                  f'{": " + self.note if self.note else ""} (SIGKILL abandons it)',
                  file=sys.stderr, flush=True)

    def __bool__(self) -> bool:
        """Return True once a stop was asked for."""
        return bool(self.signals)


def init(args=None):
    """Initialise rclpy without its signal handlers (``StopRequest`` owns the signals)."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def build_node(spec):
    """Instantiate a NodeSpec's Python node class in this process (rclpy must be initialised)."""
    import importlib

    from rclpy.parameter import Parameter

    from .node_spec import ros_arguments

    module, cls = spec.node_class.split(':')
    node_cls = getattr(importlib.import_module(module), cls)
    overrides = [Parameter(k, value=v) for k, v in spec.parameters.items()]
    return node_cls(parameter_overrides=overrides, cli_args=ros_arguments(spec))


def stop_nodes(nodes, spin_once, stop: StopRequest) -> float:
    """
    Ask every node that can stop gracefully to do so; spin until all have ``finished``.

    Waits at most the largest ``shutdown_budget_s`` among them; return the seconds it took.
    """
    start = time.monotonic()
    graceful = [n for n in nodes if hasattr(n, 'request_shutdown')]
    if not graceful:
        return 0.0
    budget = max(float(getattr(n, 'shutdown_budget_s', 1.0)) for n in graceful)
    stop.note = f'up to {budget:.1f} s for {", ".join(n.get_name() for n in graceful)}'
    for node in graceful:
        node.request_shutdown()
    deadline = start + budget
    while not all(n.finished for n in graceful) and time.monotonic() < deadline:
        spin_once(SPIN_PERIOD_S)
    late = [n.get_name() for n in graceful if not n.finished]
    if late:
        print(f'[{stop.name}] {", ".join(late)} did not finish stopping within {budget:.1f} s',
              file=sys.stderr, flush=True)
    return time.monotonic() - start


class StartError(RuntimeError):
    """A node of a graph could not be built (its message names the node and the reason)."""


# What a node's constructor raises for bad input: parameters, files, checkpoints, profiles.
BUILD_ERRORS = (ValueError, RuntimeError, OSError, LookupError)


class Graph:
    """
    Nodes built and run in this process, stopped gracefully however the run ends.

        with Graph({'sim': make_sim, 'recorder': make_recorder}, name='collect') as graph:
            graph.spin(until=lambda: graph.nodes['sim'].finished)

    Entering initialises rclpy (without its signal handlers), installs ``StopRequest`` and builds
    the nodes in order (if one fails, those built are destroyed and ``StartError`` names it).
    Leaving asks the graceful nodes to stop (``stop_nodes``), destroys every node and shuts rclpy
    down. Every node is added to one executor, a SingleThreadedExecutor unless ``make_executor``
    (called once rclpy is initialised) makes another; nodes named in ``separate`` are left out of
    it, for a caller that spins them itself (on another thread).
    """

    def __init__(self, factories: typing.Dict[str, typing.Callable], name: str = '',
                 args=None, make_executor=None, separate=()):
        """Remember what to build; nothing happens before ``with``."""
        self.factories, self.name, self.args = dict(factories), name or 'dit4dit', args
        self.nodes: typing.Dict[str, typing.Any] = {}
        self.stop = StopRequest(self.name)
        self.executor = None
        self._make_executor = make_executor
        self._separate = set(separate)

    def __enter__(self):
        """Install the stop request, initialise rclpy, build the nodes."""
        self.stop.__enter__()
        init(self.args)
        try:
            for key, factory in self.factories.items():
                try:
                    self.nodes[key] = factory()
                except BUILD_ERRORS as exc:
                    raise StartError(f'{key}: {exc}') from exc
            if self._make_executor is None:
                from rclpy.executors import SingleThreadedExecutor
                self._make_executor = SingleThreadedExecutor
            self.executor = self._make_executor()
            for key, node in self.nodes.items():
                if key not in self._separate:
                    self.executor.add_node(node)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def spin_once(self, timeout_s: float = SPIN_PERIOD_S):
        """Process at most one callback (or wait ``timeout_s``)."""
        self.executor.spin_once(timeout_sec=timeout_s)

    def spin(self, until=None):
        """Spin until a stop is asked for or ``until()`` returns True."""
        while not self.stop and not (until is not None and until()):
            self.spin_once()

    def __exit__(self, *exc):
        """Stop gracefully, destroy the nodes, shut rclpy down, restore the signal handlers."""
        import rclpy

        try:
            if self.nodes and self.executor is not None:
                stop_nodes(list(self.nodes.values()), self.spin_once, self.stop)
        finally:
            if self.executor is not None:
                self.executor.shutdown()
            for node in self.nodes.values():
                node.destroy_node()
            rclpy.try_shutdown()
            self.stop.__exit__(*exc)
        return False

    @property
    def exit_code(self) -> int:
        """Return the largest ``exit_code`` a node reports (0 by default)."""
        return max([int(getattr(n, 'exit_code', 0)) for n in self.nodes.values()] + [0])


def run_node(factory, args=None, until=None, name: str = '') -> int:
    """
    Build one node with ``factory()``, spin it until stopped, stop it gracefully; return the code.

    ``until(node)``, checked between callbacks, ends the spin as a stop request would. A node
    that cannot be built (ValueError and the like: bad parameters, a checkpoint that does not
    fit) is reported in one line, exit code 2.
    """
    label = name or getattr(factory, '__name__', 'dit4dit')
    try:
        with Graph({label: factory}, name=label, args=args) as graph:
            node = graph.nodes[label]
            graph.spin(None if until is None else (lambda: until(node)))
    except StartError as exc:
        print(f'[{label}] cannot start: {exc.__cause__}', file=sys.stderr, flush=True)
        return 2
    return graph.exit_code
