"""
The G1 graph closed loop against the twin: the robot's own graph, wire and operator steps.

    python -m dit4dit_bringup.evaluate_g1 --checkpoint DIR --output runs/g1 [--episodes 20] \
        [--task reach] [--control-mode arm_sdk] [--videos all|first|none]

Starts the graph of ``g1.launch.py hardware:=sim`` (``dit4dit_bringup.graph.g1_graph``: the
policy, the executor, the G1 bridge and the twin, unchanged), each node its own process with its
log in ``OUT/logs``, and plays the operator the README describes, for each held-out state i:

1. with the bridge disabled (the twin's walking-controller stand-in holds the arms), reset the
   twin to state i (``/g1_twin/reset``; the episode's clock starts);
2. ``/g1_bridge/enable``: the bridge latches the measured pose and ramps the arm_sdk weight up;
3. once the weight is 1, ``/action_executor/enable``: the executor ramps onto the policy;
4. at the twin's end event, ``/g1_bridge/disable``: the weight ramps down, the controller takes
   the arms back.

It records every LowCmd the bridge publishes (the arm_sdk weight, ``arm_sdk_weight.png``), the
twin's counters from ``/diagnostics`` (LowCmd it rejected: must be 0), and the head camera
(videos), and writes ``results.json``. A process of the graph that dies ends the run with a
non-zero exit; SIGINT/SIGTERM stop it with the episodes so far, the bridge ramping down first.
"""

import argparse
import json
from pathlib import Path
import sys
import time
import typing

import numpy as np

from .closed_loop import add_episode_arguments, EpisodeMonitor, VIDEO_CHOICES
from .graph import g1_graph, G1Arguments

SERVICE_TIMEOUT_S = 30.0      # a service that does not answer within this is an error
START_TIMEOUT_S = 120.0       # the graph's processes up and talking (torch import, model load)
END_MARGIN_S = 15.0           # beyond the task's time limit, for the end event
SLOWEST_RTF = 0.25            # the episode's time limit is the twin's: wall time up to 4x
READY_RTF = 0.9               # the twin back at real time after start-up (the policy loading)
READY_TIMEOUT_S = 90.0


class GraphFailure(RuntimeError):
    """The graph did not do what the operator asked (a process died, a service refused)."""


class Operator:
    """The in-process node that calls the services and records what the graph does."""

    def __init__(self, node, monitor: EpisodeMonitor, control_mode: str):
        """Subscribe to the bridge's LowCmd, the twin's diagnostics, the events and the camera."""
        from dit4dit_common import topics
        from dit4dit_msgs.msg import EpisodeEvent
        from dit4dit_msgs.srv import ResetEpisode
        from dit4dit_sim.nodes.robot_io import UNITREE_QOS
        from rclpy.qos import qos_profile_sensor_data
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger
        from unitree_hg.msg import LowCmd, LowState

        self.node, self.monitor, self.control_mode = node, monitor, control_mode
        self.t0 = time.monotonic()
        self.weights: typing.List[typing.Tuple[float, float]] = []    # (s since t0, weight)
        self.twin_counters: typing.Dict[str, int] = {}
        self.twin_rates: typing.List[typing.Tuple[float, float, float]] = []   # (s, RTF, Hz)
        self.lowstate_count = 0
        self.marks: typing.List[typing.Tuple[float, str]] = []         # (s, what happened)
        node.create_subscription(LowCmd, topics.name(control_mode), self._on_lowcmd,
                                 UNITREE_QOS)
        # the twin is up once /lowstate flows; then 500 Hz are not worth the CPU
        self._lowstate_sub = node.create_subscription(
            LowState, topics.name('lowstate'), self._on_lowstate, qos_profile_sensor_data)
        node.create_subscription(DiagnosticArray, topics.name('diagnostics'),
                                 self._on_diagnostics, 10)
        node.create_subscription(EpisodeEvent, topics.name('episode_event'), monitor.on_event,
                                 20)
        node.create_subscription(Image, topics.name('camera'), monitor.on_image,
                                 qos_profile_sensor_data)
        self.clients = {name: node.create_client(Trigger, name) for name in (
            '/g1_bridge/enable', '/g1_bridge/disable', '/action_executor/enable')}
        self.reset_client = node.create_client(ResetEpisode, '/g1_twin/reset')

    def now(self) -> float:
        """Return seconds since the operator started."""
        return time.monotonic() - self.t0

    def _on_lowcmd(self, msg):
        from dit4dit_g1.lowcmd import ARM_SDK_WEIGHT_INDEX

        weight = msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q if self.control_mode == 'arm_sdk' else 1.0
        self.weights.append((self.now(), float(weight)))

    def _on_lowstate(self, msg):
        self.lowstate_count += 1
        if self._lowstate_sub is not None:
            self.node.destroy_subscription(self._lowstate_sub)
            self._lowstate_sub = None

    def _on_diagnostics(self, msg):
        from dit4dit_sim.nodes.robot_io import TWIN_STATUS

        for status in msg.status:
            if status.name == TWIN_STATUS:
                values = {kv.key: kv.value for kv in status.values}
                self.twin_rates.append((self.now(), float(values.pop('real_time_factor')),
                                        float(values.pop('lowstate_hz'))))
                self.twin_counters = {k: int(v) for k, v in values.items()}

    @property
    def weight(self) -> float:
        """Return the weight of the last LowCmd (0 before any)."""
        return self.weights[-1][1] if self.weights else 0.0

    @property
    def rejected(self) -> int:
        """Return the LowCmd messages the twin refused so far (all reasons)."""
        return sum(v for k, v in self.twin_counters.items() if k.startswith('rejected_'))


class Session:
    """The operator's steps over the running graph (see the module docstring)."""

    def __init__(self, graph, processes, operator: Operator):
        """Drive ``operator`` (spun by ``graph``, an in-process Graph) over ``processes``."""
        self.graph, self.processes, self.op = graph, processes, operator

    def wait(self, until, timeout_s: float, what: str) -> bool:
        """Spin until ``until()``; GraphFailure on timeout or a dead process; False if stopped."""
        deadline = time.monotonic() + timeout_s
        while not until():
            if self.graph.stop:
                return False
            dead = self.processes.exited()
            if dead:
                spec, code = dead[0]
                raise GraphFailure(f'{spec.name} exited with {code} (log: '
                                   f'{self.processes.log_dir}/{spec.name}.log)')
            if time.monotonic() > deadline:
                raise GraphFailure(f'timed out after {timeout_s:g} s waiting for {what}')
            self.graph.spin_once(0.01)
        return True

    def call(self, client, request, what: str):
        """Call a service; return its response (GraphFailure if it refuses or is absent)."""
        if not self.wait(client.service_is_ready, SERVICE_TIMEOUT_S, f'service {what}'):
            return None
        future = client.call_async(request)
        if not self.wait(future.done, SERVICE_TIMEOUT_S, f'{what} to answer'):
            return None
        response = future.result()
        if not response.success:
            raise GraphFailure(f'{what} refused: {response.message}')
        self.op.marks.append((self.op.now(), what))
        return response

    def trigger(self, name: str):
        """Call a std_srvs/Trigger service of the graph."""
        from std_srvs.srv import Trigger

        return self.call(self.op.clients[name], Trigger.Request(), name)

    def disable_bridge(self):
        """Hand the arms back to the controller and wait for the weight to reach 0."""
        if not self.op.weights or self.op.weight <= 0.0:
            return
        self.trigger('/g1_bridge/disable')
        self.wait(lambda: self.op.weight <= 0.0, 30.0, 'the arm_sdk weight to reach 0')

    def episode(self, index: int, time_limit_s: float) -> bool:
        """Run one held-out episode; return False if a stop was asked for."""
        from dit4dit_msgs.srv import ResetEpisode

        op, monitor = self.op, self.op.monitor
        rows_before = len(monitor.rows)
        self.disable_bridge()
        if self.call(op.reset_client, ResetEpisode.Request(initial_state_index=index),
                     '/g1_twin/reset') is None:
            return False
        if not self.wait(lambda: len(monitor.rows) > rows_before, 10.0, 'the START event'):
            return False
        row = monitor.rows[-1]
        enabled = len(op.weights)
        if self.trigger('/g1_bridge/enable') is None:
            return False
        if not self.wait(lambda: op.weight >= 1.0 and len(op.weights) > enabled, 10.0,
                         'the arm_sdk weight to reach 1'):
            return False
        if self.trigger('/action_executor/enable') is None:
            return False
        ended = self.wait(lambda: 'outcome' in row, time_limit_s / SLOWEST_RTF + END_MARGIN_S,
                          f'the end of episode {row["episode"]}')
        monitor.settle(force=True)           # finish (and print) the row now
        return ended

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> bool:
        """
        Wait for the twin's first LowState, then until it runs at real time.

        Start-up (torch import, the model's load and first queries) starves the twin on a small
        machine; an episode that starts then is judged on a slow-motion robot. Two diagnostics
        in a row at ``READY_RTF`` or more end the wait; after ``timeout_s`` it warns and goes on.
        Return False if a stop was asked for.
        """
        op = self.op
        if not self.wait(lambda: op.lowstate_count > 0, START_TIMEOUT_S, "the twin's /lowstate"):
            return False
        deadline = time.monotonic() + timeout_s
        while not (len(op.twin_rates) >= 2 and min(r[1] for r in op.twin_rates[-2:]) >= READY_RTF):
            if time.monotonic() > deadline:
                rtf = op.twin_rates[-1][1] if op.twin_rates else float('nan')
                print(f'[g1] warning: the twin runs at {rtf:.2f} of real time after '
                      f'{timeout_s:g} s; episodes start anyway', file=sys.stderr, flush=True)
                return True
            seen = len(op.twin_rates)
            if not self.wait(lambda: len(op.twin_rates) > seen, 5.0, "the twin's /diagnostics"):
                return False
        return True


def evaluate(args: G1Arguments, indices, output, videos: str = 'all') -> dict:
    """Run the held-out episodes ``indices``; write and return the results."""
    from dit4dit_common.runner import Graph
    from dit4dit_sim.envs.g1_tabletop import task as tabletop_task
    import rclpy

    from dit4dit_train.lerobot_format import write_mp4

    from .run_graph import ProcessGraph

    if args.hardware != 'sim':
        raise ValueError('evaluate_g1 runs the twin: hardware must be sim')
    if videos not in VIDEO_CHOICES:
        raise ValueError(f'videos {videos!r}: valid are {", ".join(VIDEO_CHOICES)}')
    specs = g1_graph(args)
    twin = next(s for s in specs if s.name == 'g1_twin')
    output = Path(output)
    for sub in ('videos', 'logs'):
        (output / sub).mkdir(parents=True, exist_ok=True)
    time_limit_s = tabletop_task(args.task).time_limit_s
    monitor = EpisodeMonitor(len(indices), videos)
    start = time.monotonic()
    walls, error, stopped, ready_at = [], '', False, 0
    with Graph({'operator': lambda: rclpy.create_node('g1_operator')},
               name='evaluate_g1') as graph:
        op = Operator(graph.nodes['operator'], monitor, args.control_mode)
        with ProcessGraph(specs, log_dir=output / 'logs') as processes:
            session = Session(graph, processes, op)
            try:
                print(f'[g1] starting {", ".join(s.name for s in specs)} (logs: '
                      f'{output}/logs)', flush=True)
                stopped = not session.wait_ready()
                ready_at = len(op.twin_rates)
                for index in indices:
                    if stopped:
                        break
                    began = time.monotonic()
                    stopped = not session.episode(index, time_limit_s)
                    walls.append(time.monotonic() - began)
                if not stopped:
                    session.disable_bridge()
                    # one more diagnostics period: the twin's counters after the last command
                    seen = op.twin_counters
                    session.wait(lambda: op.twin_counters is not seen, 5.0, 'diagnostics')
            except GraphFailure as exc:
                error = str(exc)
                print(f'[g1] {error}', file=sys.stderr, flush=True)
    monitor.settle(force=True)
    finished = monitor.finished()
    for row in finished:
        images = monitor.frames.get(row['episode']) or []
        if images:
            path = output / 'videos' / f'episode_{row["episode"]:03d}.mp4'
            row['video'] = str(write_mp4(path, np.stack(images), int(round(twin.parameters[
                'camera_fps']))))
    wins = sum(bool(r['success']) for r in finished)
    ramps = weight_ramps(op.weights)
    rtf = np.array([r[1:] for r in op.twin_rates[ready_at:]]).reshape(-1, 2)   # not start-up
    result = {
        'checkpoint': args.checkpoint, 'task': args.task, 'control_mode': args.control_mode,
        'strategy': args.strategy, 'episodes': len(finished), 'successes': wins,
        'success_rate': wins / len(finished) if finished else 0.0,
        'lowcmd_received': len(op.weights), 'twin_counters': op.twin_counters,
        'lowcmd_rejected': op.rejected, 'weight_ramps': ramps,
        'twin_real_time_factor': _summary(rtf[:, 0]), 'twin_lowstate_hz': _summary(rtf[:, 1]),
        'wall_s': round(time.monotonic() - start, 1),
        'wall_s_per_episode': round(float(np.mean(walls)), 2) if walls else None,
        'error': error, 'stopped': stopped, 'rows': finished}
    (output / 'results.json').write_text(json.dumps(result, indent=2))
    if args.control_mode == 'arm_sdk':
        plot_weights(op.weights, finished, output / 'arm_sdk_weight.png')
    return result


def _summary(values) -> dict:
    """Return mean, min and max of a series (None when empty), rounded for the results."""
    if not len(values):
        return None
    return {'mean': round(float(np.mean(values)), 3), 'min': round(float(np.min(values)), 3),
            'max': round(float(np.max(values)), 3)}


def weight_ramps(weights, tolerance: float = 1e-6, near: float = 0.02) -> typing.List[dict]:
    """
    Return the ramps of the arm_sdk weight: runs of LowCmd over which it went 0 -> 1 or 1 -> 0.

    Each: {'direction': 'up'|'down', 'start_s', 'duration_s', 'messages'} (seconds of the
    operator's clock). A change that does not go all the way (to within ``near``: an enabled
    bridge's first LowCmd already carries one step of its ramp) is not a ramp.
    """
    ramps, run = [], None
    for (t0, w0), (t1, w1) in zip(weights, weights[1:]):
        step = w1 - w0
        direction = 'up' if step > tolerance else 'down' if step < -tolerance else None
        if direction and run and run['direction'] == direction:
            run.update(end=t1, to=w1, messages=run['messages'] + 1)
            continue
        if run:
            ramps.append(run)
        run = {'direction': direction, 'start': t0, 'end': t1, 'frm': w0, 'to': w1,
               'messages': 1} if direction else None
    if run:
        ramps.append(run)
    full = [r for r in ramps if min(r['frm'], r['to']) <= near and
            max(r['frm'], r['to']) >= 1.0 - near]
    return [{'direction': r['direction'], 'start_s': round(r['start'], 3),
             'duration_s': round(r['end'] - r['start'], 3), 'messages': r['messages']}
            for r in full]


def plot_weights(weights, rows, path):
    """Write the arm_sdk weight of every LowCmd over time, the episodes shaded by outcome."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 3))
    if weights:
        t, w = np.array(weights).T
        ax.plot(t, w, lw=0.8, color='tab:blue', label='arm_sdk weight (motor_cmd[29].q)')
    ax.set_xlabel('time [s]')
    ax.set_ylabel('weight')
    ax.set_ylim(-0.05, 1.1)
    wins = sum(bool(r['success']) for r in rows)
    ax.set_title(f'arm_sdk LowCmd stream: {len(weights)} messages; {wins}/{len(rows)} episodes '
                 'succeeded')
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_bringup evaluate_g1``)."""
    from .graph import CONTROL_MODES

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    add_episode_arguments(parser, 'directory for results, videos and logs')
    parser.add_argument('--control-mode', default='arm_sdk', choices=CONTROL_MODES,
                        help="the bridge's LowCmd topic")
    args = parser.parse_args(argv)
    try:
        g1 = G1Arguments(checkpoint=args.checkpoint, hardware='sim', task=args.task,
                         control_mode=args.control_mode, strategy=args.strategy)
        indices = range(args.first_index, args.first_index + args.episodes)
        result = evaluate(g1, list(indices), args.output, videos=args.videos)
    except (ValueError, RuntimeError) as exc:
        print(f'evaluate_g1: {exc}', file=sys.stderr, flush=True)
        return 2
    ups = sum(r['direction'] == 'up' for r in result['weight_ramps'])
    downs = len(result['weight_ramps']) - ups
    counters, rtf = result['twin_counters'], result['twin_real_time_factor'] or {}
    accepted = sum(v for k, v in counters.items() if k.startswith('accepted_'))
    print(f'[g1] twin: {result["lowcmd_rejected"]} LowCmd/HandCmd rejected, {accepted} accepted; '
          f'real-time factor {rtf.get("mean", float("nan")):.2f} (min '
          f'{rtf.get("min", float("nan")):.2f}); arm_sdk weight ramps seen: {ups} up, {downs} '
          f'down ({result["lowcmd_received"]} LowCmd)', flush=True)
    print(f'[g1] {result["successes"]}/{result["episodes"]} succeeded '
          f'({100 * result["success_rate"]:.0f} %) through policy_node -> action_executor -> '
          f'g1_bridge -> /{args.control_mode} -> twin; {result["wall_s_per_episode"]} s per '
          f'episode; results {args.output}/results.json, videos {args.output}/videos',
          flush=True)
    if result['error']:
        return 1
    return 0 if result['episodes'] == args.episodes and not result['lowcmd_rejected'] else 1


if __name__ == '__main__':
    sys.exit(main())
