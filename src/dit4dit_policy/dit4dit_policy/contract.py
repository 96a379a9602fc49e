"""
The policy contract: what a checkpoint takes in and gives out, saved with its weights.

    fps              the rate of the training data: actions of a chunk are 1/fps apart
    state_joints     the joints of the state vector, in order (read from joint_states by name)
    action_joints    the joints of the action vector, in order (the chunk's joint names)
    cameras          the camera views in model order, each with the image size it was trained on
    resize           how each view is resized to the model's frame (``RESIZE_RULES``), the same
                     rule at training and deployment because both read it from here
    robot_type       what the data was recorded on (informative)

It is ``contract.json`` in every checkpoint directory (listed, with its checksum, in the manifest).
The policy node reads it instead of parameters, and the graph checks it against the robot profile
before anything starts (``check_fits``): a checkpoint that drives joints the robot does not have
is refused with the joints named. ROS-free, no torch.

    python -m dit4dit_policy.contract CHECKPOINT                 # print it
    python -m dit4dit_policy.contract CHECKPOINT --write --fps 15 --camera head:96x96 \
        [--state-joints a,b,...] [--action-joints a,b,...]        # add one to an older checkpoint
"""

from dataclasses import dataclass
import json
import math
import typing

FILE = 'contract.json'
VERSION = 2

# How a camera view becomes the model's frame size (implemented in model/dit4dit.py):
#   bilinear            the official DiT4DiT/Cosmos training resize (bilinear, no antialias); the
#                       default of new checkpoints
#   bilinear_antialias  bilinear with antialias, what this suite used before contract version 2
#                       (a version-1 contract, which has no ``resize``, reads as this)
RESIZE_RULES = ('bilinear', 'bilinear_antialias')
DEFAULT_RESIZE = 'bilinear'
VERSION_1_RESIZE = 'bilinear_antialias'


class ContractError(ValueError):
    """A policy contract is invalid, or does not fit a robot or a model."""


@dataclass(frozen=True)
class Camera:
    """One camera view: its name (dataset ``observation.images.<name>``) and trained size."""

    name: str
    height: int
    width: int


@dataclass(frozen=True)
class PolicyContract:
    """See the module docstring."""

    fps: float
    state_joints: typing.Tuple[str, ...]
    action_joints: typing.Tuple[str, ...]
    cameras: typing.Tuple[Camera, ...]
    robot_type: str = ''
    resize: str = DEFAULT_RESIZE

    def __post_init__(self):
        """Validate; store the sequences as tuples."""
        object.__setattr__(self, 'state_joints', tuple(str(j) for j in self.state_joints))
        object.__setattr__(self, 'action_joints', tuple(str(j) for j in self.action_joints))
        object.__setattr__(self, 'cameras', tuple(
            c if isinstance(c, Camera) else Camera(**c) for c in self.cameras))
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ContractError(f'fps must be a number > 0, got {self.fps!r}')
        for key in ('state_joints', 'action_joints'):
            names = getattr(self, key)
            if not names or any(not n for n in names):
                raise ContractError(f'{key} must name at least one joint, none empty')
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ContractError(f'{key} names {", ".join(twice)} more than once')
        if self.resize not in RESIZE_RULES:
            raise ContractError(f'resize {self.resize!r}: valid are '
                                f'{", ".join(map(repr, RESIZE_RULES))}')
        if not self.cameras:
            raise ContractError('cameras must list at least one view')
        views = [c.name for c in self.cameras]
        if len(set(views)) != len(views) or any(not v for v in views):
            raise ContractError(f'camera names must be unique and non-empty: {views}')
        for c in self.cameras:
            if not (isinstance(c.height, int) and isinstance(c.width, int)
                    and c.height >= 2 and c.width >= 2):
                raise ContractError(f'camera {c.name}: size {c.height}x{c.width} is not an '
                                    'image size')

    @property
    def action_period_s(self) -> float:
        """Return the time between two actions of a chunk."""
        return 1.0 / float(self.fps)

    @property
    def camera_names(self) -> typing.List[str]:
        """Return the view names in model order."""
        return [c.name for c in self.cameras]

    def to_dict(self) -> dict:
        """Return plain data (``contract.json``)."""
        return {'version': VERSION, 'fps': self.fps, 'state_joints': list(self.state_joints),
                'action_joints': list(self.action_joints),
                'cameras': [{'name': c.name, 'height': c.height, 'width': c.width}
                            for c in self.cameras],
                'resize': self.resize, 'robot_type': self.robot_type}

    def dumps(self) -> str:
        """Return the JSON text of ``contract.json``."""
        return json.dumps(self.to_dict(), indent=2) + '\n'

    @classmethod
    def from_dict(cls, data) -> 'PolicyContract':
        """Build from plain data; unknown keys and other versions are refused."""
        if not isinstance(data, dict):
            raise ContractError('policy contract: expected a mapping')
        data = dict(data)
        version = data.pop('version', None)
        if version not in (1, VERSION):
            raise ContractError(f'policy contract version {version!r}; this code reads '
                                f'1 and {VERSION}')
        if version == 1:
            if 'resize' in data:
                raise ContractError('policy contract version 1 has no resize key')
            data['resize'] = VERSION_1_RESIZE
        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ContractError(f'policy contract: unknown key(s) {", ".join(unknown)}')
        try:
            return cls(**data)
        except TypeError as exc:
            raise ContractError(f'policy contract: {exc}') from exc

    @classmethod
    def loads(cls, text: str) -> 'PolicyContract':
        """Parse ``contract.json`` text."""
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ContractError(f'policy contract: not JSON ({exc})') from exc

    def check_model(self, raw_state_dim: int, raw_action_dim: int, num_views: int):
        """Raise ContractError unless the widths match a model and its normalisation."""
        problems = []
        if len(self.state_joints) != raw_state_dim:
            problems.append(f'{len(self.state_joints)} state joints for {raw_state_dim} state '
                            'values')
        if len(self.action_joints) != raw_action_dim:
            problems.append(f'{len(self.action_joints)} action joints for {raw_action_dim} '
                            'action values')
        if len(self.cameras) != num_views:
            problems.append(f'{len(self.cameras)} cameras for a {num_views}-view model')
        if problems:
            raise ContractError('policy contract does not fit the model: ' + '; '.join(problems))


def check_fits(contract: PolicyContract, measured, commandable, robot: str = 'the robot'):
    """
    Raise ContractError naming every joint the robot cannot provide or take.

    ``measured``: the joints the robot reports (its profile's joints); ``commandable``: the
    joints a policy may command there (its profile's policy joints).
    """
    measured, commandable = set(measured), set(commandable)
    lines = []
    absent = [j for j in contract.state_joints if j not in measured]
    if absent:
        lines.append(f'state joints {robot} does not measure: {", ".join(absent)}')
    refused = [j for j in contract.action_joints if j not in commandable]
    if refused:
        lines.append(f'action joints {robot} does not let a policy command: '
                     f'{", ".join(refused)}')
    if lines:
        raise ContractError('the checkpoint does not fit ' + robot + ':\n  ' +
                            '\n  '.join(lines))


def _camera(text: str) -> Camera:
    name, _, size = text.partition(':')
    try:
        height, width = (int(v) for v in size.lower().split('x'))
    except ValueError:
        raise ContractError(f'--camera {text!r}: use name:HEIGHTxWIDTH, e.g. head:96x96') \
            from None
    return Camera(name, height, width)


def main(argv=None):
    """Print a checkpoint's contract, or write one into an older checkpoint (see above)."""
    import argparse
    from pathlib import Path

    from .model.checkpoint import read_contract, read_normalizer, write_contract

    parser = argparse.ArgumentParser(description='Show or add the policy contract of a '
                                     'checkpoint directory.')
    parser.add_argument('checkpoint')
    parser.add_argument('--write', action='store_true', help='add or replace contract.json')
    parser.add_argument('--fps', type=float, help='rate of the training data [Hz]')
    parser.add_argument('--camera', action='append', default=[], type=_camera,
                        help='name:HEIGHTxWIDTH per view, in model order')
    parser.add_argument('--state-joints', default='',
                        help='comma-separated (default: the action joints)')
    parser.add_argument('--action-joints', default='',
                        help='comma-separated (default: the names in normalization.json)')
    parser.add_argument('--robot-type', default='')
    parser.add_argument('--resize', choices=RESIZE_RULES, default=VERSION_1_RESIZE,
                        help='the resize rule the checkpoint was trained with (checkpoints '
                        'older than contracts were trained with %(default)s)')
    args = parser.parse_args(argv)
    if not args.write:
        print(read_contract(args.checkpoint).dumps(), end='')
        return 0
    if args.fps is None or not args.camera:
        parser.error('--write needs --fps and at least one --camera')
    actions = [j for j in args.action_joints.split(',') if j] or \
        list(read_normalizer(args.checkpoint, verify_contract=False).action_names)
    states = [j for j in args.state_joints.split(',') if j] or actions
    contract = PolicyContract(fps=args.fps, state_joints=states, action_joints=actions,
                              cameras=args.camera, robot_type=args.robot_type,
                              resize=args.resize)
    write_contract(Path(args.checkpoint), contract)
    print(f'{args.checkpoint}: contract written ({len(states)} state, {len(actions)} action '
          f'joints, {len(args.camera)} camera(s), {args.fps:g} fps)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
