"""
``sim_bridge``: a simulated environment behind the same topics as the robot side.

Topic names come from the registry (``dit4dit_common.topics``):

* The robot side, by the environment's ``interface`` (``robot_io``): ``joint_topics`` publishes
  ``/joint_states`` (``sensor_msgs/JointState``, every joint, at ``joint_state_rate_hz``) and takes
  ``/dit4dit/joint_command`` (positions by name: the environment's command names, joint targets or
  LIBERO's OSC pseudo-joints; applied while an episode runs; a message with an unknown name or a
  non-finite value is refused whole, one stamped before the episode started is dropped).
  ``unitree_hg`` (the G1 twin) publishes ``/lowstate`` at ``lowstate_rate_hz`` and Dex3 states,
  and takes LowCmd on ``/lowcmd`` and ``/arm_sdk`` and HandCmd: the real robot's wire; the twin
  runs (and reports) between episodes too.
* ``/camera/image_raw`` (``sensor_msgs/Image`` rgb8, the environment's first camera, at
  ``camera_fps`` of simulated time); the other cameras on their view's registry topic (LIBERO's
  wrist: ``/wrist_camera/image_raw``), rendered only when someone subscribes.
* Episodes: ``~/reset`` (``dit4dit_msgs/ResetEpisode``: initial state i of ``split``, -1 for the
  next one; ``task`` switches the environment's task, e.g. ``push``) starts one. Every start and
  end is a ``dit4dit_msgs/EpisodeEvent`` on ``/dit4dit/episode_event`` (SUCCESS once the task has
  held for ``success_hold_s``, FAILURE at the time limit or when the environment says so, e.g.
  the wrong cube touched; ABORT when a reset cuts an episode short) and the instruction goes to
  ``/dit4dit/task`` (``std_msgs/String``, transient local). With ``auto_reset`` the next initial
  state starts ``pause_s`` after an end, until ``max_episodes`` (0: no limit); ``finished`` then
  turns True.
* ``/dit4dit/objects`` (``visualization_msgs/MarkerArray``, with every joint state): the objects'
  poses (rviz, scripted experts).
* Time: each tick advances the simulation by the wall time elapsed times ``real_time_factor``
  (at most ``max_step_s``). ``stamp_clock: sim`` publishes that time on ``/clock`` and stamps with
  it (run the other nodes with ``use_sim_time:=true`` when the factor is not 1); ``wall`` stamps
  with this node's clock and publishes no ``/clock``: a twin in real time, as a robot is.
* ``lockstep``: synchronous mode for simulators or policies slower than real time (LIBERO renders
  4-7 steps/s here). During an episode the simulation advances ``lockstep_period_s`` at a time,
  each step only once a ``joint_command`` stamped at or after the last observation has arrived
  (or after ``lockstep_timeout_s`` of wall time, with a warning); every step publishes joint
  states and objects. An episode takes no step before a command answers its first observation.
  Commanders must run on ``/clock`` (``use_sim_time``). The node keeps, per episode, its steps,
  those a command answered and those taken on a timeout (``lockstep_counts``): the record of what
  ran the episode, kept where the commands are applied rather than by listening.

The environment is ROS-free (``dit4dit_sim.envs``); this node converts and schedules only.
"""

import time
import typing

from dit4dit_common import stamps, topics
from dit4dit_common.image import rgb_to_image_fields
from dit4dit_common.params import declare, Param
from dit4dit_common.runner import run_node
from dit4dit_msgs.msg import EpisodeEvent
from dit4dit_msgs.srv import ResetEpisode
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from .robot_io import INTERFACES
from ..envs import ENVIRONMENTS, make_env
from ..unitree_twin import TwinConfig

SPLITS = ('train', 'train_every_target', 'held_out')
LOCKSTEP_PATIENCE_S = 60.0     # lockstep_timeout_s 0 waits for ever, and warns this often
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)

PARAMETERS = (
    Param('environment', 'g1_tabletop', 'Environment backend (dit4dit_sim.envs.ENVIRONMENTS).',
          choices=tuple(ENVIRONMENTS)),
    Param('task', 'reach', 'Task id of the environment (g1_tabletop: reach, push; libero: '
          '<suite>/<index> such as libero_spatial/0).'),
    Param('render_height', 128, 'Camera image height [px].', low=16, high=1024),
    Param('render_width', 128, 'Camera image width [px].', low=16, high=1024),
    Param('camera_fps', 15.0, 'Camera rate in simulated time [Hz].', low=0.1, high=1000.0),
    Param('joint_state_rate_hz', 100.0, 'joint_states rate in simulated time [Hz].', low=0.1,
          high=2000.0),
    Param('real_time_factor', 1.0, 'Simulated seconds per wall second (not 1: set '
          'use_sim_time).', low=1e-3, high=1000.0),
    Param('max_step_s', 0.05, 'Largest advance per tick [s]; slow ticks are not caught up.',
          low=1e-4, high=10.0),
    Param('split', 'held_out', 'Initial states: train (seed = index), train_every_target (scene '
          'index // n named with target index % n of the n the environment has, e.g. the three '
          'cubes of g1_tabletop) or held_out (the fixed set).', choices=SPLITS),
    Param('auto_reset', True, 'Start the next initial state after each end (else wait for '
          '~/reset).'),
    Param('first_index', 0, 'Initial state index of the first automatic episode.', low=0),
    Param('start_delay_s', 0.0, 'Wait this long before the first automatic episode [s] '
          '(recorders and experts get time to connect).', low=0.0, high=3600.0),
    Param('max_episodes', 0, 'Stop starting episodes after this many (0: no limit).', low=0),
    Param('pause_s', 0.5, 'Simulated pause between an end and the next automatic start [s].',
          low=0.0, high=3600.0),
    Param('time_limit_s', 0.0, 'End an episode with FAILURE after this much simulated time [s] '
          "(0: the environment's own limit, e.g. LIBERO's per suite).", low=0.0, high=1e6),
    Param('success_hold_s', 0.2, 'The task must hold this long before SUCCESS is declared [s].',
          low=0.0, high=3600.0),
    Param('lockstep', False, 'Advance one lockstep_period_s step per fresh joint_command '
          '(synchronous mode; real_time_factor then applies between episodes only).'),
    Param('lockstep_period_s', 0.05, 'Simulated time per lockstep step [s].', low=1e-4,
          high=10.0),
    Param('lockstep_timeout_s', 5.0, 'Step anyway (and warn) after this much wall time without '
          'a fresh command [s]; 0 waits for ever (warning each minute).', low=0.0, high=3600.0),
    Param('stamp_clock', 'sim', 'sim: publish /clock and stamp with it; wall: stamp with this '
          "node's clock, no /clock (a twin in real time).", choices=('sim', 'wall')),
    Param('lowstate_rate_hz', 500.0, 'unitree_hg: LowState rate in simulated time [Hz] (at most '
          'the physics rate).', low=1.0, high=2000.0),
    Param('hand_state_rate_hz', 100.0, 'unitree_hg: Dex3 HandState rate [Hz].', low=1.0,
          high=2000.0),
    Param('mode_machine', 5, 'unitree_hg: the robot variant id LowState reports; a LowCmd with '
          'another is ignored (5: 29-DoF, as unitree_mujoco).', low=0, high=255),
    Param('command_timeout_s', 0.1, 'unitree_hg: commands older than this are no longer in '
          'force (motors damped, or the arms handed back to the controller) [s].', low=1e-3,
          high=60.0),
)


def episode_seed(split: str, index: int, held_out_seeds, targets=()) -> typing.Tuple[int, str]:
    """
    Return (environment seed, target) of initial state ``index`` of ``split``.

    The target is '' (the seed's own) except in ``train_every_target``, where consecutive indices
    name each of ``targets`` in the same scene. ValueError if there is no such state.
    """
    if split == 'train_every_target':
        if not targets:
            raise ValueError('split train_every_target needs an environment with targets')
        scene, which = divmod(index, len(targets))
        return episode_seed('train', scene, held_out_seeds)[0], targets[which]
    if split == 'held_out':
        if not 0 <= index < len(held_out_seeds):
            raise ValueError(f'held-out initial state {index} out of range '
                             f'(0..{len(held_out_seeds) - 1})')
        return int(held_out_seeds[index]), ''
    if not 0 <= index < min(held_out_seeds):
        raise ValueError(f'training initial state {index} out of range')
    return int(index), ''


class SimBridgeNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        """Declare and validate parameters, build the environment, wire topics and services."""
        super().__init__('sim_bridge', **kwargs)
        p = self.p = declare(self, PARAMETERS)
        self.env = make_env(p['environment'], task=p['task'],
                            render_size=(p['render_height'], p['render_width']))
        self.held_out, self.tasks = self.env.held_out_seeds, self.env.tasks
        self.targets = tuple(self.env.targets)
        if p['split'] == 'train_every_target' and not self.targets:
            raise ValueError(f'split train_every_target: {p["environment"]} has no targets to '
                             'name in turn')
        if self.env.interface == 'unitree_hg':
            self.env.motors.config = TwinConfig(mode_machine=p['mode_machine'],
                                                command_timeout_s=p['command_timeout_s'])
        self.io = INTERFACES[self.env.interface](self)
        if p['lockstep'] and not self.io.stamped_commands:
            raise ValueError(f'lockstep: {p["environment"]} takes {self.env.interface} commands, '
                             'which carry no stamp to tell which observation they answer')
        # The first camera is the robot's main camera; the others get their view's topic.
        self.cameras = tuple(self.env.cameras)
        self.image_pubs = [self.create_publisher(
            Image, topics.name('camera') if i == 0 else topics.camera_topic(view), 5)
            for i, view in enumerate(self.cameras)]
        self.image_pub = self.image_pubs[0]
        self.event_pub = self.create_publisher(EpisodeEvent, topics.name('episode_event'), 10)
        self.task_pub = self.create_publisher(String, topics.name('task'), LATCHED)
        self.objects_pub = self.create_publisher(MarkerArray, topics.name('objects'), 5)
        self.clock_pub = self.create_publisher(Clock, topics.name('clock'), 10) \
            if p['stamp_clock'] == 'sim' else None
        self.create_service(ResetEpisode, '~/reset', self._on_reset)
        self.clock_ns = self.get_clock().now().nanoseconds
        self.episode_index = -1
        self.episode_start_ns = 0
        self.running = False
        self.state_index = -1
        self.next_index = p['first_index']
        self.next_start_ns = self.clock_ns + int(p['start_delay_s'] * 1e9) \
            if p['auto_reset'] else None
        self.success_since = None
        self.next_camera_ns = self.next_state_ns = self.clock_ns
        self.observed_ns = 0            # lockstep: clock of the last observation published
        self.waiting_since = None       # lockstep: wall time the current step started waiting
        self.lockstep_timeouts = 0
        self._episode_steps = {}        # lockstep: episode index -> counts of its steps
        self.finished = False
        self.results = []            # (initial_state_index, success) per finished episode
        self._wall = time.monotonic()
        self._debt = 0.0
        self.physics_dt = self.env.physics_dt
        if self.io.always_on:               # the robot stands in the first scene until a reset
            seed, target = episode_seed(p['split'], p['first_index'], self.held_out,
                                        self.targets)
            self.env.reset(seed, target)
        self.create_timer(0.005, self.tick)
        self.get_logger().info(
            f'sim_bridge: {p["environment"]}/{p["task"]} ({self.env.interface}), '
            f'{len(self.env.joint_names)} joints, camera {p["render_width"]}x'
            f'{p["render_height"]} at {p["camera_fps"]:g} Hz, real-time factor '
            f'{p["real_time_factor"]:g}, stamps: {p["stamp_clock"]} clock')

    @property
    def stale_commands(self) -> int:
        """Return the commands dropped for being stamped before their episode (joint topics)."""
        return getattr(self.io, 'stale_commands', 0)

    def lockstep_counts(self, episode_index: int) -> typing.Optional[dict]:
        """
        Return a lockstep episode's ``steps``: ``commands`` answered, ``lockstep_timeouts`` not.

        None for an episode this node did not run in lockstep.
        """
        counts = self._episode_steps.get(episode_index) if self.p['lockstep'] else None
        return None if counts is None else dict(counts)

    def _on_reset(self, request, response):
        try:
            index = request.initial_state_index
            if index < 0:
                index = self.next_index
            response.message = self.start_episode(index, request.task)
            response.success = True
        except ValueError as exc:
            response.success, response.message = False, str(exc)
        response.episode_index = max(self.episode_index, 0)
        response.instruction = self.env.instruction
        return response

    # -- episodes ------------------------------------------------------------------------------
    def start_episode(self, index: int, task: str = '') -> str:
        """Reset to initial state ``index`` (aborting a running episode); return a description."""
        seed, target = episode_seed(self.p['split'], index, self.held_out, self.targets)
        if task:
            self.env.set_task(task)
        if self.running:
            self._end(EpisodeEvent.ABORT, 'reset requested')
        self.env.reset(seed, target)
        self.episode_index += 1
        self.state_index, self.next_index = index, index + 1
        self.running, self.success_since = True, None
        self.episode_start_ns = self.clock_ns
        self._episode_steps[self.episode_index] = {'steps': 0, 'commands': 0,
                                                   'lockstep_timeouts': 0}
        self.next_camera_ns = self.next_state_ns = self.clock_ns
        self.task_pub.publish(String(data=self.env.instruction))
        self._event(EpisodeEvent.START, '')
        self._publish_observations()
        return f'episode {self.episode_index}: {self.env.instruction!r} (initial state {index})'

    def _end(self, kind: int, message: str):
        self.running = False
        self._event(kind, message)
        if kind != EpisodeEvent.ABORT:
            self.results.append((self.state_index, kind == EpisodeEvent.SUCCESS))
        wins = sum(s for _, s in self.results)
        self.get_logger().info(
            f'episode {self.episode_index} {("SUCCESS", "FAILURE", "ABORT")[kind - 1]} after '
            f'{self.env.time:.1f} s; {wins}/{len(self.results)} so far')
        limit = self.p['max_episodes']
        if limit and len(self.results) >= limit:
            self.finished, self.next_start_ns = True, None
        elif self.p['auto_reset'] and kind != EpisodeEvent.ABORT:
            self.next_start_ns = self.clock_ns + int(self.p['pause_s'] * 1e9)

    def _event(self, kind: int, message: str):
        msg = EpisodeEvent(event=kind, episode_index=self.episode_index,
                           instruction=self.env.instruction,
                           task=f'{self.p["environment"]}/{self.env.task.name}',
                           initial_state_index=self.state_index, message=message)
        msg.header.stamp = self._stamp()
        self.event_pub.publish(msg)

    # -- loop ----------------------------------------------------------------------------------
    def _stamp(self):
        if self.p['stamp_clock'] == 'wall':
            return self.get_clock().now().to_msg()
        return stamps.time_msg(self.clock_ns)

    def tick(self):
        """Advance the simulation by the elapsed wall time (scaled) and publish what is due."""
        wall = time.monotonic()
        if self.p['lockstep'] and self.running:
            self._wall = wall
            self._lockstep(wall)
            return
        seconds = min((wall - self._wall) * self.p['real_time_factor'], self.p['max_step_s'])
        self._wall = wall
        if seconds > 0.0:
            self.advance(seconds)

    def _lockstep(self, wall: float):
        """Take one lockstep step once a command answers the last observation (or on timeout)."""
        if self.waiting_since is None:
            self.waiting_since = wall
        timeout = self.p['lockstep_timeout_s']
        answered = self.io.commanded_ns >= self.observed_ns
        if not answered:
            waited = wall - self.waiting_since
            if not timeout and waited > LOCKSTEP_PATIENCE_S:    # waiting for ever: say so
                self.get_logger().warn(
                    f'lockstep: {waited:.0f} s without a command answering the observation at '
                    f'{self.observed_ns * 1e-9:.2f} s (is the policy refusing observations?)',
                    throttle_duration_sec=LOCKSTEP_PATIENCE_S)
            if not timeout or waited < timeout:
                return
            self.lockstep_timeouts += 1
            self.get_logger().warn(f'lockstep: no command for {timeout:g} s; stepping with the '
                                   'last one', throttle_duration_sec=5.0)
        # counted before the step, which may end the episode and publish its end event
        self._episode_steps[self.episode_index][
            'commands' if answered else 'lockstep_timeouts'] += 1
        self.waiting_since = None
        self.advance(self.p['lockstep_period_s'])

    def advance(self, seconds: float):
        """Advance the clock (and the physics while it runs) by ``seconds``; start/end episodes."""
        if not self.running and self.next_start_ns is not None and \
                self.clock_ns >= self.next_start_ns:
            self.next_start_ns = None
            try:
                self.start_episode(self.next_index)
            except ValueError as exc:      # ran out of initial states
                self.get_logger().warn(f'no more episodes: {exc}')
                self.finished = True
            if self.p['lockstep'] and self.running:     # its steps wait for commands
                return
        if not self.running and not self.io.always_on:
            self._advance_clock(int(seconds * 1e9))
            return
        # Whole physics steps; the remainder carries over so the simulation keeps up with time.
        # Steps stop at each robot state due (LowState: every step at 500 Hz).
        self._debt += seconds
        dt_ns = int(round(self.physics_dt * 1e9))
        steps = int(self._debt / self.physics_dt + 1e-9)
        self._debt -= steps * self.physics_dt
        while steps > 0:
            until_state = -(-(self.next_state_ns - self.clock_ns) // dt_ns)   # ceil
            # lockstep: one observation per step, the one the next command answers
            n = steps if self.p['lockstep'] else min(steps, max(1, until_state))
            self.env.step(n * self.physics_dt)
            steps -= n
            self._advance_clock(n * dt_ns)
            self._publish_observations()
            if self.running:
                if self.p['lockstep']:
                    self._episode_steps[self.episode_index]['steps'] += 1
                self._check_episode()

    def _advance_clock(self, ns: int):
        self.clock_ns += ns
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=self._stamp()))

    def _check_episode(self):
        if self.env.success():
            if self.success_since is None:
                self.success_since = self.env.time
            if self.env.time - self.success_since >= self.p['success_hold_s']:
                self._end(EpisodeEvent.SUCCESS, '')
        else:
            self.success_since = None
            limit = self.p['time_limit_s']
            timed_out = self.env.time >= limit - 1e-9 if limit else self.env.timed_out()
            reason = self.env.failure() or ('time limit' if timed_out else '')
            if reason:
                self._end(EpisodeEvent.FAILURE, reason)

    def _publish_observations(self):
        stamp = self._stamp()
        now = self.clock_ns
        if now >= self.next_state_ns or self.p['lockstep']:
            self.next_state_ns = _next(self.next_state_ns, now, self.io.state_rate_hz)
            if self.io.objects_with_state:
                self.objects_pub.publish(self._objects(stamp))
            self.io.publish_state(stamp)
            self.observed_ns = now
        if now >= self.next_camera_ns:
            self.next_camera_ns = _next(self.next_camera_ns, now, self.p['camera_fps'])
            if not self.io.objects_with_state:
                self.objects_pub.publish(self._objects(stamp))
            for i, (view, pub) in enumerate(zip(self.cameras, self.image_pubs)):
                if i and not pub.get_subscription_count():
                    continue             # rendering costs; extra views only when listened to
                image = Image(**rgb_to_image_fields(self.env.render(view)))
                image.header.stamp, image.header.frame_id = stamp, view
                pub.publish(image)

    def _objects(self, stamp) -> MarkerArray:
        markers = []
        for i, (name, (position, rgb, size)) in enumerate(self.env.objects().items()):
            m = Marker(ns=name, id=i, type=Marker.CUBE, action=Marker.ADD)
            m.header.stamp, m.header.frame_id = stamp, 'world'
            x, y, z = (float(v) for v in position)
            m.pose.position.x, m.pose.position.y, m.pose.position.z = x, y, z
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = float(size)
            m.color.r, m.color.g, m.color.b, m.color.a = (*(float(c) for c in rgb), 1.0)
            markers.append(m)
        return MarkerArray(markers=markers)

    def destroy_node(self):
        """Free the renderer, then the node."""
        self.env.close()
        super().destroy_node()


def _next(due: int, now: int, rate_hz: float) -> int:
    """Return the next due time [ns]: one period after ``due`` (no drift), or after ``now``."""
    period = int(round(1e9 / rate_hz))
    due += period
    return due if due > now else now + period


def main(args=None):
    """Run the node (``ros2 run dit4dit_sim sim_bridge``); exit once ``max_episodes`` ended."""
    return run_node(SimBridgeNode, args, until=lambda node: node.finished, name='sim_bridge')


if __name__ == '__main__':
    raise SystemExit(main())
