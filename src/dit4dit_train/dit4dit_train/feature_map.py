"""
Feature maps: which recorded topics become which LeRobot dataset features.

A YAML file names the reference camera (the clock), the cameras, the joint-state subset and its
order (from the robot profile), the action source (a commanded-joints topic, or the next observed
state when no command was recorded), where instructions come from, and each feature's maximum
age. ``load_feature_map('g1')`` finds a packaged map by name; a path loads any file.

Topics are keys of the topic registry (``dit4dit_common.topics``: ``joint_states``,
``joint_command``, ...) or ROS names starting with '/'; a camera without a topic listens on its
view's registry topic (``head`` -> ``/camera/image_raw``). Loaded maps hold resolved names.
"""

from dataclasses import dataclass, field
import os
from pathlib import Path
import typing

from dit4dit_common import topics
from dit4dit_common.paths import share_dir
import yaml


class FeatureMapError(ValueError):
    """A feature map is invalid."""


def _check(cond, msg):
    if not cond:
        raise FeatureMapError(msg)


def _topic(key_or_name: str, where: str) -> str:
    """Return a ROS name for a registry key or a name; FeatureMapError if neither."""
    _check(isinstance(key_or_name, str) and key_or_name, f'{where}: a topic is required')
    try:
        return topics.resolve(key_or_name)
    except topics.UnknownTopic as exc:
        raise FeatureMapError(f'{where}: {exc} (or a ROS name starting with /)') from None


def _from(cls, data, where):
    _check(isinstance(data, dict), f'{where}: expected a mapping')
    valid = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - valid)
    _check(not unknown, f'{where}: unknown key(s) {", ".join(unknown)}; valid: '
           f'{", ".join(sorted(valid))}')
    try:
        return cls(**data)
    except TypeError as exc:
        raise FeatureMapError(f'{where}: {exc}') from exc


# Every stamped topic's clock is checked against the reference camera's before alignment: the
# median of (header stamp - bag receive time) of each topic may differ from the reference's by at
# most ``max_skew_s``. ``use_receive_time: true`` takes a topic's receive time as its stamp (for a
# device stamping with its own clock).
DEFAULT_MAX_SKEW_S = 0.5
BAD_FRAME_POLICIES = ('skip', 'abort')


def _check_selection(section, joints, indices, merge):
    """Validate the joint selection of a state or action section."""
    if indices is None:
        return
    _check(isinstance(indices, list) and all(isinstance(i, int) and i >= 0 for i in indices),
           f'{section}.indices must be a list of message positions (integers >= 0)')
    _check(len(indices) == len(joints), f'{section}.indices has {len(indices)} positions for '
           f'{len(joints)} joints: one position per joint, in the order of joints')
    _check(not merge, f'{section}: indices (unnamed messages) and merge (named subsets from '
           'several publishers) exclude each other')


@dataclass
class CameraMap:
    """One camera topic (sensor_msgs/Image or CompressedImage)."""

    topic: str = ''                                     # '' : the view's registry topic
    max_age_s: float = 0.1
    resize: typing.Optional[typing.List[int]] = None   # [height, width], None keeps the size
    use_receive_time: bool = False
    max_skew_s: float = DEFAULT_MAX_SKEW_S
    on_bad_frame: str = 'skip'          # an undecodable frame: drop its rows ('skip') or stop
    depth_range_m: typing.Optional[typing.List[float]] = None   # 16UC1/32FC1: grey range

    def __post_init__(self):
        """Validate."""
        if self.topic:
            self.topic = _topic(self.topic, 'camera topic')
        _check(self.on_bad_frame in BAD_FRAME_POLICIES, f'camera {self.topic}: on_bad_frame '
               f'{self.on_bad_frame!r}; valid: {", ".join(BAD_FRAME_POLICIES)}')
        _check(self.depth_range_m is None or (
            len(self.depth_range_m) == 2 and 0 <= self.depth_range_m[0] < self.depth_range_m[1]),
            f'camera {self.topic}: depth_range_m must be [near, far] metres with near < far')
        _check(self.max_age_s > 0, f'camera {self.topic}: max_age_s must be > 0')
        _check(self.max_skew_s > 0, f'camera {self.topic}: max_skew_s must be > 0')
        _check(self.resize is None or (len(self.resize) == 2 and min(self.resize) > 0),
               f'camera {self.topic}: resize must be [height, width]')


@dataclass
class StateMap:
    """The joint-state topic and the joints taken from it, in order."""

    topic: str
    joints: typing.List[str]
    max_age_s: float = 0.1
    keys: typing.Dict[str, int] = field(default_factory=dict)   # groups for the sin/cos layout
    use_receive_time: bool = False
    max_skew_s: float = DEFAULT_MAX_SKEW_S
    indices: typing.Optional[typing.List[int]] = None   # positions, for messages without names
    merge: bool = False     # several publishers, each with some of the joints, on one topic

    def __post_init__(self):
        """Validate."""
        self.topic = _topic(self.topic, 'state.topic')
        _check(len(self.joints) > 0, 'state.joints must not be empty')
        _check_selection('state', self.joints, self.indices, self.merge)
        _check(len(set(self.joints)) == len(self.joints), 'state.joints has duplicates')
        _check(self.max_age_s > 0, 'state.max_age_s must be > 0')
        _check(self.max_skew_s > 0, 'state.max_skew_s must be > 0')
        if not self.keys:
            self.keys = {'joints': len(self.joints)}
        _check(sum(self.keys.values()) == len(self.joints),
               f'state.keys sizes sum to {sum(self.keys.values())}, joints has {len(self.joints)}')


@dataclass
class ActionMap:
    """Where actions come from."""

    source: str = 'command'              # 'command' or 'next_state'
    topic: str = ''                      # JointState (position) or JointTrajectory (first point)
    joints: typing.Optional[typing.List[str]] = None   # default: the state joints
    max_age_s: float = 0.1
    use_receive_time: bool = False
    max_skew_s: float = DEFAULT_MAX_SKEW_S
    indices: typing.Optional[typing.List[int]] = None   # positions, for messages without names
    merge: bool = False     # several publishers, each with some of the joints, on one topic

    def __post_init__(self):
        """Validate."""
        _check(self.max_skew_s > 0, 'action.max_skew_s must be > 0')
        _check(self.source in ('command', 'next_state'),
               f"action.source {self.source!r}: valid are 'command', 'next_state'")
        _check(self.source != 'command' or self.topic, 'action.topic is required for command')
        if self.topic:
            self.topic = _topic(self.topic, 'action.topic')


@dataclass
class EpisodeMap:
    """How bags are cut into episodes and where instructions come from."""

    events_topic: str = 'episode_event'
    task_topic: str = 'task'
    default_instruction: str = ''
    keep_aborted: bool = False
    keep_failed: bool = True

    def __post_init__(self):
        """Resolve the topics."""
        self.events_topic = _topic(self.events_topic, 'episodes.events_topic')
        self.task_topic = _topic(self.task_topic, 'episodes.task_topic')


@dataclass
class FeatureMap:
    """The whole map."""

    fps: float
    reference: str
    cameras: typing.Dict[str, CameraMap]
    state: StateMap
    action: ActionMap = field(default_factory=ActionMap)
    episodes: EpisodeMap = field(default_factory=EpisodeMap)
    robot_type: str = ''

    def __post_init__(self):
        """Validate what spans sections."""
        _check(self.fps > 0, 'fps must be > 0')
        _check(self.cameras, 'at least one camera is required: DiT4DiT conditions its actions on '
               'video, so a joints-only dataset cannot train it (map the camera topic under '
               'cameras:, and name it as reference)')
        if self.action.indices is not None:
            _check_selection('action', self.action_joints, self.action.indices, self.action.merge)
        _check(self.reference in self.cameras,
               f'reference {self.reference!r} is not a camera; cameras: {", ".join(self.cameras)}')

    @property
    def action_joints(self) -> typing.List[str]:
        """Return the joints of the action vector."""
        return list(self.action.joints or self.state.joints)

    @classmethod
    def from_dict(cls, data: dict) -> 'FeatureMap':
        """Build from plain data, refusing unknown keys."""
        _check(isinstance(data, dict), 'feature map: expected a mapping')
        data = dict(data)
        cams = data.get('cameras')
        _check(isinstance(cams, dict), 'feature map: cameras must be a mapping name -> camera')
        data['cameras'] = {k: _from(CameraMap, v or {}, f'cameras.{k}') for k, v in cams.items()}
        for name, camera in data['cameras'].items():
            if not camera.topic:
                try:
                    camera.topic = topics.camera_topic(name)
                except KeyError as exc:
                    raise FeatureMapError(f'cameras.{name}: {exc.args[0]}') from None
        data['state'] = _from(StateMap, data.get('state'), 'state')
        if 'action' in data:
            data['action'] = _from(ActionMap, data['action'], 'action')
        data['episodes'] = _from(EpisodeMap, data.get('episodes') or {}, 'episodes')
        return _from(cls, data, 'feature map')


def packaged_maps_dir() -> Path:
    """Return the directory of the packaged feature maps (installed share/ or source tree)."""
    return share_dir('dit4dit_train', __file__, 'config', 'feature_maps')


def load_feature_map(name_or_path) -> FeatureMap:
    """Load a packaged map by name (e.g. 'g1_dex3') or any YAML file by path."""
    path = Path(os.path.expanduser(str(name_or_path)))
    if not path.suffix:
        path = packaged_maps_dir() / f'{name_or_path}.yaml'
        if not path.is_file():
            names = sorted(p.stem for p in packaged_maps_dir().glob('*.yaml'))
            raise FeatureMapError(f'unknown feature map {name_or_path!r}; packaged: '
                                  f'{", ".join(names)} (or give a path to a YAML file)')
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise FeatureMapError(f'{path}: {exc}') from exc
    return FeatureMap.from_dict(data)
