"""
``policy_node``: camera + joint states + task in, action chunks out.

Subscription callbacks only store the latest messages; a worker thread turns the newest complete
observation into a query (``dit4dit_policy.inference.PolicyRunner``) and publishes the chunk as a
``trajectory_msgs/JointTrajectory`` whose header stamp is the camera frame's stamp (the time the
observation was taken), points spaced by the training data's action period. Stale or malformed
observations (wrong encoding or size, NaN joints, missing joint names) are refused with a
throttled log, counted, and shown in ``dit4dit_msgs/PolicyStatus`` and on ``/diagnostics``.

With ``rtc_inpainting`` (use it with the executor's ``rtc`` strategy) each chunk is sampled with
its first actions inpainted on the previous chunk's, those the executor follows while this one is
computed (``runtime.inpainting``). The guide is dropped when the measured joints have left the
previous chunk by more than ``rtc_max_deviation`` (the executor held, or a new episode began).

With ``imagine_every_n_chunks`` > 0 the worker also renders the video DiT's imagined future after
every n-th chunk and publishes it on ``~/imagined`` (``sensor_msgs/Image`` rgb8, the frames side by
side, stamped like the chunk): for rviz and debugging; it delays the next query by a full video
sampling run.
"""

import threading
import time

from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from dit4dit_msgs.msg import PolicyStatus
from dit4dit_msgs.srv import SetTask
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from .spin import declare_parameters, run_node
from ..image_codec import compressed_to_rgb, image_to_rgb, ImageFormatError, rgb_to_image_fields
from ..inference import Observation, ObservationError, PolicyRunner
from ..runtime.inpainting import InpaintingConfig, PrefixPlanner

PARAMETERS = (
    ('checkpoint', '', 'Checkpoint directory (dit4dit_policy.model.checkpoint).'),
    ('device', 'cpu', 'Torch device for inference, e.g. cpu or cuda:0.'),
    ('camera_topics', ['/camera/image_raw'], 'One image topic per model view, in view order.'),
    ('compressed', False, 'Subscribe sensor_msgs/CompressedImage (jpeg/png) instead of Image.'),
    ('joint_states_topic', '/joint_states', 'sensor_msgs/JointState topic of the robot.'),
    ('state_joints', [''], 'Joint names of the model state, in order ([""]: the action joints).'),
    ('action_joints', [''], 'Joint names of the actions ([""]: from the checkpoint).'),
    ('action_period_s', 0.0, 'Time between actions of a chunk (0: 1/fps of the training data '
     'from the checkpoint, else 1/30).'),
    ('max_observation_age_s', 0.3, 'Refuse observations older than this (camera stamp vs now).'),
    ('max_joint_skew_s', 0.1, 'Refuse when joint states and camera are further apart than this.'),
    ('query_period_s', 0.0, 'Minimum time between queries (0: as fast as inference allows).'),
    ('instruction', '', 'Initial task instruction (SetTask service changes it).'),
    ('task_topic', '', 'std_msgs/String topic (transient local) whose messages set the '
     'instruction, e.g. /dit4dit/task of a simulator ("": none).'),
    ('seed', -1, 'Seed for deterministic sampling (-1: random).'),
    ('rtc_inpainting', False, 'Inpaint each chunk on the actions executed while it is computed '
     '(real-time chunking; pair with the executor strategy rtc).'),
    ('rtc_soft_actions', 4, 'Actions after the frozen prefix whose inpainting weight falls to 0.'),
    ('rtc_latency_margin_s', 0.02, 'Added to the measured latency when freezing actions [s].'),
    ('imagine_every_n_chunks', 0, 'Publish the imagined future frames on ~/imagined after every '
     'n-th chunk (0: never; costs a full video sampling run each time).'),
    ('imagine_steps', 10, 'Euler steps of the imagined-future video sampler.'),
    ('rtc_max_deviation', 0.15, 'No inpainting when a measured action joint is further than '
     'this from the previous chunk at the observation time [joint units].'),
)


class PolicyNode(Node):
    """The policy node (see the module docstring)."""

    def __init__(self, **kwargs):
        """Declare parameters, load the checkpoint, wire topics; start the worker thread."""
        super().__init__('policy_node', **kwargs)
        p = declare_parameters(self, PARAMETERS)
        if not p['checkpoint']:
            raise ValueError('parameter checkpoint is required')
        self.runner = PolicyRunner.from_checkpoint(p['checkpoint'], device=p['device'])
        norm = self.runner.normalizer
        actions = [j for j in p['action_joints'] if j] or list(norm.action_names)
        if len(actions) != norm.raw_action_dim:
            raise ValueError(f'{len(actions)} action joint names for {norm.raw_action_dim} '
                             'action dims (set action_joints)')
        state = [j for j in p['state_joints'] if j] or actions
        if len(state) != norm.raw_state_dim:
            raise ValueError(f'{len(state)} state joint names for {norm.raw_state_dim} state '
                             'values (set state_joints)')
        views = self.runner.config.video.num_views
        if len(p['camera_topics']) != views:
            raise ValueError(f'{len(p["camera_topics"])} camera topics for a {views}-view model')
        self.action_joints, self.state_joints, self.p = actions, state, p
        fps = self.runner.manifest.get('extra', {}).get('fps') or 30.0
        self.action_period = p['action_period_s'] or 1.0 / float(fps)
        self.planner = PrefixPlanner(self.runner.config.action.chunk_size, InpaintingConfig(
            soft_actions=p['rtc_soft_actions'], latency_margin_s=p['rtc_latency_margin_s']))
        self.last_guide = None
        self._lock = threading.Lock()
        self._images = [None] * views
        self._joints = None
        self._instruction = p['instruction']
        self._new = threading.Event()
        self._stop = threading.Event()
        self.state = PolicyStatus.STATE_WAITING_FOR_OBSERVATION
        self.message, self.rejected, self.chunk_index = '', 0, 0
        self.last_latency, self.latencies, self.last_stamp, self.last_age = 0.0, [], Time(), 0.0
        msg_type = CompressedImage if p['compressed'] else Image
        for view, topic in enumerate(p['camera_topics']):
            self.create_subscription(msg_type, topic, lambda m, v=view: self._on_image(v, m),
                                     qos_profile_sensor_data)
        self.create_subscription(JointState, p['joint_states_topic'], self._on_joints,
                                 qos_profile_sensor_data)
        self.chunk_pub = self.create_publisher(JointTrajectory, '~/action_chunk', 10)
        self.status_pub = self.create_publisher(PolicyStatus, '~/status', 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        if p['imagine_every_n_chunks'] < 0 or p['imagine_steps'] < 1:
            raise ValueError('imagine_every_n_chunks must be >= 0 and imagine_steps >= 1')
        self.imagined_pub = self.create_publisher(Image, '~/imagined', 1)
        self.create_service(SetTask, '~/set_task', self._on_set_task)
        if p['task_topic']:
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.create_subscription(String, p['task_topic'], self._on_task, latched)
        self.create_timer(0.5, self.publish_status)
        self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name='policy_worker', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'policy ready: {p["checkpoint"]} on {p["device"]}, {views} view(s), '
            f'{len(actions)} action joints, chunk {self.runner.config.action.chunk_size} x '
            f'{self.action_period * 1e3:.1f} ms')

    # -- callbacks: store only ---------------------------------------------------------------
    def _on_image(self, view, msg):
        with self._lock:
            self._images[view] = msg
        self._new.set()

    def _on_joints(self, msg):
        with self._lock:
            self._joints = msg

    def _on_task(self, msg):
        self._set_instruction(msg.data.strip())

    def _set_instruction(self, text):
        with self._lock:
            previous, self._instruction = self._instruction, text
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
        stamp_ns = min(_ns(m.header.stamp) for m in images)
        now_ns = self.get_clock().now().nanoseconds
        age = (now_ns - stamp_ns) * 1e-9
        if age > self.p['max_observation_age_s']:
            return self._refuse(f'stale observation: camera frame is {age:.3f} s old '
                                f'(max {self.p["max_observation_age_s"]} s)')
        skew = abs(_ns(joints.header.stamp) - stamp_ns) * 1e-9
        if _ns(joints.header.stamp) and skew > self.p['max_joint_skew_s']:
            return self._refuse(f'joint states {skew:.3f} s away from the camera frame')
        try:
            rgb = [compressed_to_rgb(m) if self.p['compressed'] else image_to_rgb(m)
                   for m in images]
            state = _pick(joints, self.state_joints)
            guide = self._guide(stamp_ns, joints)
            pred = self.runner.predict(Observation(rgb, state, instruction),
                                       seed=None if self.p['seed'] < 0 else self.p['seed'],
                                       guide=guide)
        except (ImageFormatError, ObservationError, KeyError) as exc:
            return self._refuse(f'observation refused: {exc}')
        self.last_guide = guide
        self._publish_chunk(pred.actions, images[0].header.stamp, now_ns, pred.timings)
        self.planner.remember(stamp_ns, self.action_period, pred.actions, self.last_age)
        every = self.p['imagine_every_n_chunks']
        if every and self.chunk_index % every == 0:
            self._publish_imagined(Observation(rgb, state, instruction), images[0].header.stamp)

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
            t = k * self.action_period
            msg.points.append(JointTrajectoryPoint(
                positions=[float(v) for v in row],
                time_from_start=Duration(sec=int(t), nanosec=int((t % 1) * 1e9))))
        self.chunk_pub.publish(msg)
        self.chunk_index += 1
        self.last_latency = timings['total']
        self.latencies = (self.latencies + [timings['total']])[-100:]
        self.last_stamp = stamp
        self.last_age = (self.get_clock().now().nanoseconds - _ns(stamp)) * 1e-9
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


def _ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


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
    return run_node(PolicyNode, args)


if __name__ == '__main__':
    main()
