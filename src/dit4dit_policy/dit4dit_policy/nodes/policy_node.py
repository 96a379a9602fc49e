"""
``policy_node``: camera + joint states + task in, action chunks out.

What the policy takes and gives is the checkpoint's contract (``dit4dit_policy.contract``), not
parameters: the camera views (each on its registry topic, ``/camera/image_raw`` for ``head``,
unless ``camera_topics`` says otherwise) and the image size they were trained on, the state
joints read by name from ``/joint_states``, the action joints and the action period (1/fps).

Subscription callbacks only store the latest messages; a worker thread turns the newest complete
observation into a query (``dit4dit_policy.inference.PolicyRunner``) and publishes the chunk on
``/dit4dit/action_chunk`` as a ``trajectory_msgs/JointTrajectory`` whose header stamp is the camera
frame's stamp (the time the observation was taken). Stale or malformed observations (wrong
encoding, a frame size other than the contract's, NaN joints, missing joint names) are refused
with a throttled log, counted, and shown in ``dit4dit_msgs/PolicyStatus`` (on
``/dit4dit/policy_status``) and on ``/diagnostics``.

With ``actions_per_query`` = n the worker queries only on the observation n action periods after
the last query (and once its joint states are as new as its frames): with ``lockstep_executor``
and a simulator in lockstep, each chunk's first n actions run open loop and the simulation waits
for every query, as benchmark clients run a policy (LIBERO: n = 8).

With ``rtc_inpainting`` (use it with the executor's ``rtc`` strategy) each chunk is sampled with
its first actions inpainted on the previous chunk's, those the executor follows while this one is
computed (``runtime.inpainting``). The guide is dropped when the measured joints have left the
previous chunk by more than ``rtc_max_deviation`` (the executor held, or a new episode began).

With ``imagine_every_n_chunks`` > 0 the worker also renders the video DiT's imagined future after
every n-th chunk and publishes it on ``/dit4dit/imagined`` (``sensor_msgs/Image`` rgb8, the
frames side by side, stamped like the chunk): for rviz and debugging; it delays the next query by
a full video sampling run.
"""

import threading
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from dit4dit_common import stamps, topics
from dit4dit_common.image import (
    compressed_to_rgb, image_to_rgb, ImageFormatError, rgb_to_image_fields)
from dit4dit_common.params import declare, Param
from dit4dit_common.runner import run_node
from dit4dit_msgs.msg import PolicyStatus
from dit4dit_msgs.srv import SetTask
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from ..inference import Observation, ObservationError, PolicyRunner
from ..runtime.inpainting import InpaintingConfig, PrefixPlanner

PARAMETERS = (
    Param('checkpoint', '', 'Checkpoint directory (weights, normalisation, policy contract).'),
    Param('device', 'cpu', 'Torch device for inference, e.g. cpu or cuda:0.'),
    Param('camera_topics', [''], 'Image topic per camera view of the contract, in its order '
          "([\"\"]: each view's registry topic, e.g. head -> /camera/image_raw)."),
    Param('compressed', False, 'Subscribe sensor_msgs/CompressedImage (jpeg/png) instead of '
          'Image, on <topic>/compressed (image_transport) unless camera_topics names them.'),
    Param('check_image_size', True, 'Refuse camera frames whose size differs from the size the '
          'checkpoint was trained on (the contract); false resizes whatever arrives.'),
    Param('max_observation_age_s', 0.3, 'Refuse observations older than this (camera stamp vs '
          'now) [s].', low=1e-3, high=60.0),
    Param('max_joint_skew_s', 0.1, 'Refuse when joint states and camera are further apart than '
          'this [s].', low=0.0, high=60.0),
    Param('query_period_s', 0.0, 'Minimum time between queries (0: as fast as inference '
          'allows) [s].', low=0.0, high=60.0),
    Param('actions_per_query', 0, 'Query on the observation stamped this many action periods '
          'after the last query, with joint states as new as the frames (0: whenever inference '
          'is free). With lockstep_executor and a lockstep simulator this runs the first n '
          'actions of each chunk open loop, as benchmark clients do; at most the chunk size.',
          low=0, high=10000),
    Param('instruction', '', 'Initial task instruction (the ~/set_task service changes it).'),
    Param('follow_task', False, 'Take the instruction from /dit4dit/task (std_msgs/String, '
          "transient local), e.g. a simulator's."),
    Param('seed', -1, 'Seed for deterministic sampling (-1: random).', low=-1),
    Param('rtc_inpainting', False, 'Inpaint each chunk on the actions executed while it is '
          'computed (real-time chunking; pair with the executor strategy rtc).'),
    Param('rtc_soft_actions', 4, 'Actions after the frozen prefix whose inpainting weight falls '
          'to 0.', low=0, high=1000),
    Param('rtc_latency_margin_s', 0.02, 'Added to the measured latency when freezing actions '
          '[s].', low=0.0, high=10.0),
    Param('rtc_max_deviation', 0.15, 'No inpainting when a measured action joint is further than '
          'this from the previous chunk at the observation time [joint units].', low=0.0),
    Param('imagine_every_n_chunks', 0, 'Publish the imagined future frames after every n-th '
          'chunk (0: never; costs a full video sampling run each time).', low=0),
    Param('imagine_steps', 10, 'Euler steps of the imagined-future video sampler.', low=1,
          high=1000),
)


class PolicyNode(Node):
    """The policy node (see the module docstring)."""

    def __init__(self, **kwargs):
        """Declare parameters, load the checkpoint and its contract, wire topics; start work."""
        super().__init__('policy_node', **kwargs)
        p = self.p = declare(self, PARAMETERS)
        if not p['checkpoint']:
            raise ValueError('parameter checkpoint is required')
        self.runner = PolicyRunner.from_checkpoint(p['checkpoint'], device=p['device'])
        contract = self.contract = self.runner.contract
        self.action_joints = list(contract.action_joints)
        self.state_joints = list(contract.state_joints)
        self.action_period = contract.action_period_s
        given = [t for t in p['camera_topics'] if t]
        if given and len(given) != len(contract.cameras):
            raise ValueError(f"{len(given)} camera_topics for the contract's "
                             f'{len(contract.cameras)} views ({", ".join(contract.camera_names)})')
        self.camera_topics = given or [topics.camera_topic(v) for v in contract.camera_names]
        if p['compressed'] and not given:     # image_transport's name for the JPEG stream
            self.camera_topics = [f'{t}/compressed' for t in self.camera_topics]
        chunk = self.runner.config.action.chunk_size
        if p['actions_per_query'] > chunk:
            raise ValueError(f'actions_per_query {p["actions_per_query"]} exceeds the chunk of '
                             f'{chunk} actions: the executor would run out with no query due')
        self._next_query_ns = None           # actions_per_query: the next observation to query
        self.planner = PrefixPlanner(self.runner.config.action.chunk_size, InpaintingConfig(
            soft_actions=p['rtc_soft_actions'], latency_margin_s=p['rtc_latency_margin_s']))
        self.last_guide = None
        self._lock = threading.Lock()
        self._images = [None] * len(self.camera_topics)
        self._joints = None
        self._instruction = p['instruction']
        self._new = threading.Event()
        self._stop = threading.Event()
        self.state = PolicyStatus.STATE_WAITING_FOR_OBSERVATION
        self.message, self.rejected, self.chunk_index = '', 0, 0
        self.last_latency, self.latencies, self.last_stamp, self.last_age = 0.0, [], Time(), 0.0
        msg_type = CompressedImage if p['compressed'] else Image
        for view, topic in enumerate(self.camera_topics):
            self.create_subscription(msg_type, topic, lambda m, v=view: self._on_image(v, m),
                                     qos_profile_sensor_data)
        self.create_subscription(JointState, topics.name('joint_states'), self._on_joints,
                                 qos_profile_sensor_data)
        self.chunk_pub = self.create_publisher(JointTrajectory, topics.name('action_chunk'), 10)
        self.status_pub = self.create_publisher(PolicyStatus, topics.name('policy_status'), 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.name('diagnostics'), 10)
        self.imagined_pub = self.create_publisher(Image, topics.name('imagined'), 1)
        self.create_service(SetTask, '~/set_task', self._on_set_task)
        if p['follow_task']:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(String, topics.name('task'), self._on_task, latched)
        self.create_timer(0.5, self.publish_status)
        self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name='policy_worker', daemon=True)
        self._worker.start()
        views = ', '.join(f'{c.name} {c.width}x{c.height} on {t}'
                          for c, t in zip(contract.cameras, self.camera_topics))
        self.get_logger().info(
            f'policy ready: {p["checkpoint"]} on {p["device"]}; {views}; '
            f'{len(self.state_joints)} state and {len(self.action_joints)} action joints; '
            f'chunk {self.runner.config.action.chunk_size} x {self.action_period * 1e3:.1f} ms')

    # -- callbacks: store only ---------------------------------------------------------------
    def _on_image(self, view, msg):
        with self._lock:
            self._images[view] = msg
        self._new.set()

    def _on_joints(self, msg):
        with self._lock:
            self._joints = msg
        if self.p['actions_per_query']:
            self._new.set()          # the frames may have come first: the observation is whole

    def _on_task(self, msg):
        self._set_instruction(msg.data.strip())

    def _set_instruction(self, text):
        with self._lock:
            previous, self._instruction = self._instruction, text
            if text != previous:
                self._next_query_ns = None   # a new task: query at once
            self.planner.reset()     # a new task: the old plan must not shape the new one
        return previous

    def _on_set_task(self, request, response):
        text = request.instruction.strip()
        response.previous_instruction = self._set_instruction(text)
        response.success = True
        response.message = f'instruction set to {text!r}' if text else 'instruction cleared'
        self.get_logger().info(response.message)
        return response

    # -- worker ------------------------------------------------------------------------------
    def _work(self):
        last_query = 0.0
        while not self._stop.is_set():
            if not self._new.wait(timeout=0.1):
                continue
            self._new.clear()
            wait = self.p['query_period_s'] - (time.monotonic() - last_query)
            if wait > 0:
                time.sleep(wait)
            last_query = time.monotonic()
            try:
                self._query()
            except Exception as exc:  # noqa: BLE001  one bad query must not kill the worker
                self._refuse(f'inference failed: {type(exc).__name__}: {exc}',
                             PolicyStatus.STATE_ERROR)

    def _snapshot(self):
        with self._lock:
            return list(self._images), self._joints, self._instruction

    def _query(self):
        images, joints, instruction = self._snapshot()
        if any(m is None for m in images) or joints is None:
            self.state = PolicyStatus.STATE_WAITING_FOR_OBSERVATION
            return
        if not instruction:
            self.state = PolicyStatus.STATE_WAITING_FOR_INSTRUCTION
            return
        stamp_ns = min(stamps.to_ns(m.header.stamp) for m in images)
        if not self._due(stamp_ns, joints):
            return
        now_ns = self.get_clock().now().nanoseconds
        age = (now_ns - stamp_ns) * 1e-9
        if age > self.p['max_observation_age_s']:
            return self._refuse(f'stale observation: camera frame is {age:.3f} s old '
                                f'(max {self.p["max_observation_age_s"]} s)')
        joints_ns = stamps.to_ns(joints.header.stamp)
        skew = abs(joints_ns - stamp_ns) * 1e-9
        if joints_ns and skew > self.p['max_joint_skew_s']:
            return self._refuse(f'joint states {skew:.3f} s away from the camera frame')
        try:
            rgb = self._decode(images)
            state = _pick(joints, self.state_joints)
            guide = self._guide(stamp_ns, joints)
            pred = self.runner.predict(Observation(rgb, state, instruction),
                                       seed=None if self.p['seed'] < 0 else self.p['seed'],
                                       guide=guide)
        except (ImageFormatError, ObservationError, KeyError) as exc:
            return self._refuse(f'observation refused: {exc}')
        self.last_guide = guide
        self._publish_chunk(pred.actions, images[0].header.stamp, now_ns, pred.timings)
        if self.p['actions_per_query']:      # half a period early: stamps are rounded to ns
            self._next_query_ns = stamp_ns + int(
                (self.p['actions_per_query'] - 0.5) * self.action_period * 1e9)
        self.planner.remember(stamp_ns, self.action_period, pred.actions, self.last_age)
        every = self.p['imagine_every_n_chunks']
        if every and self.chunk_index % every == 0:
            self._publish_imagined(Observation(rgb, state, instruction), images[0].header.stamp)

    def _due(self, stamp_ns, joints) -> bool:
        """Return whether ``actions_per_query`` lets the observation at ``stamp_ns`` be queried."""
        if not self.p['actions_per_query']:
            return True
        if stamps.to_ns(joints.header.stamp) < stamp_ns:
            return False                     # its joint states have not arrived yet
        with self._lock:
            due = self._next_query_ns
        # an observation older than the last query means the clock restarted: query at once
        return due is None or stamp_ns >= due or \
            stamp_ns < due - int(self.p['actions_per_query'] * self.action_period * 1e9)

    def _decode(self, images):
        """Return the frames as RGB arrays; ImageFormatError names the topic and the fix."""
        decode = compressed_to_rgb if self.p['compressed'] else image_to_rgb
        rgb = []
        for camera, topic, msg in zip(self.contract.cameras, self.camera_topics, images):
            size = (camera.width, camera.height) if self.p['check_image_size'] else None
            try:
                rgb.append(decode(msg, expected_size=size))
            except ImageFormatError as exc:
                hint = ' (the size the checkpoint was trained on; check_image_size:=false ' \
                    'resizes)' if 'expected' in str(exc) else ''
                raise ImageFormatError(f'{topic}: {exc}{hint}') from None
        return rgb

    def _publish_imagined(self, obs, stamp):
        frames = self.runner.imagine(obs, steps=self.p['imagine_steps'])
        msg = Image(**rgb_to_image_fields(np.concatenate(list(frames), axis=1)))
        msg.header.stamp = stamp
        msg.header.frame_id = 'imagined_future'
        self.imagined_pub.publish(msg)

    def _guide(self, stamp_ns, joints):
        """Return the inpainting guide for this query, or None."""
        if not self.p['rtc_inpainting']:
            return None
        guide = self.planner.guide(stamp_ns)
        if guide is None:
            return None
        try:
            measured = _pick(joints, self.action_joints)
        except KeyError:      # actions are not joint positions we can compare with
            return guide
        deviation = float(np.max(np.abs(guide.actions[0] - measured)))
        if not deviation <= self.p['rtc_max_deviation']:     # NaN included
            self.get_logger().info(
                f'inpainting skipped: joints are {deviation:.3f} from the previous chunk',
                throttle_duration_sec=5.0)
            self.planner.reset()
            return None
        return guide

    def _publish_chunk(self, actions, stamp, now_ns, timings):
        msg = JointTrajectory()
        msg.header.stamp = stamp
        msg.joint_names = list(self.action_joints)
        for k, row in enumerate(actions):
            msg.points.append(JointTrajectoryPoint(
                positions=[float(v) for v in row],
                time_from_start=stamps.duration_msg(k * self.action_period)))
        self.chunk_pub.publish(msg)
        self.chunk_index += 1
        self.last_latency = timings['total']
        self.latencies = (self.latencies + [timings['total']])[-100:]
        self.last_stamp = stamp
        self.last_age = (self.get_clock().now().nanoseconds - stamps.to_ns(stamp)) * 1e-9
        self.state, self.message = PolicyStatus.STATE_RUNNING, ''
        self.publish_status()

    def _refuse(self, reason, state=PolicyStatus.STATE_REJECTING):
        self.rejected += 1
        self.state, self.message = state, reason
        self.get_logger().warn(reason, throttle_duration_sec=2.0)
        self.publish_status()

    # -- status ------------------------------------------------------------------------------
    def publish_status(self):
        """Publish the PolicyStatus."""
        msg = PolicyStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.state = self.state
        msg.instruction = self._instruction
        msg.chunk_index = self.chunk_index
        msg.observation_stamp = self.last_stamp
        msg.observation_age_s = float(self.last_age)
        msg.inference_latency_s = float(self.last_latency)
        msg.inference_latency_p99_s = float(np.percentile(self.latencies, 99)
                                            if self.latencies else 0.0)
        msg.rejected_observations = self.rejected
        msg.message = self.message
        self.status_pub.publish(msg)

    def _publish_diagnostics(self):
        levels = {PolicyStatus.STATE_RUNNING: DiagnosticStatus.OK,
                  PolicyStatus.STATE_ERROR: DiagnosticStatus.ERROR}
        level = levels.get(self.state, DiagnosticStatus.WARN)
        status = DiagnosticStatus(level=level, name='dit4dit: policy_node',
                                  message=self.message or 'ok', hardware_id='policy')
        status.values = [KeyValue(key='chunks', value=str(self.chunk_index)),
                         KeyValue(key='rejected', value=str(self.rejected)),
                         KeyValue(key='latency_s', value=f'{self.last_latency:.4f}')]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)

    def destroy_node(self):
        """Stop the worker, then the node."""
        self._stop.set()
        self._worker.join(timeout=5.0)
        return super().destroy_node()


def _pick(joints: JointState, names) -> np.ndarray:
    lookup = {n: i for i, n in enumerate(joints.name)}
    missing = [n for n in names if n not in lookup]
    if missing:
        raise KeyError(f'joint states lack {", ".join(missing)}')
    if len(joints.position) != len(joints.name):
        raise KeyError(f'{len(joints.name)} joint names but {len(joints.position)} positions')
    return np.array([joints.position[lookup[n]] for n in names], dtype=np.float64)


def main(args=None):
    """Run the node (``ros2 run dit4dit_policy policy_node``)."""
    return run_node(PolicyNode, args, name='policy_node')


if __name__ == '__main__':
    raise SystemExit(main())
