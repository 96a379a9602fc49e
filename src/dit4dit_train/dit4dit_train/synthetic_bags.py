"""
Write synthetic rosbag2 recordings with rosbags, as a robot session would produce them.

Used by the tests and the data benchmark (no robot or simulator needed).

Camera frames carry their own frame number as a flat grey level (robust to video compression);
every joint value is the message's own stamp in seconds plus a per-joint offset, so a test can
read back which message a dataset row was taken from.
"""

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

JOINTS = ['j0', 'j1', 'j2']
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}


def grey(k: int) -> int:
    """Return the grey level that encodes camera frame ``k`` (unique for k < 61)."""
    return 10 + 4 * (k % 61)


def _time(store, ns):
    return store.types['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9)


def _jpeg(rgb, corrupt=False):
    import cv2

    if corrupt:     # a JPEG start marker and then nothing a decoder can use
        return np.frombuffer(b'\xff\xd8\xff\xe0' + b'\x00' * 64, np.uint8).copy()
    ok, data = cv2.imencode('.jpg', rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return data.reshape(-1)


def _header(store, ns, frame=''):
    return store.types['std_msgs/msg/Header'](stamp=_time(store, ns), frame_id=frame)


def write_bag(path, store, storage='mcap', seconds=2.0, cam_hz=30.0, joint_hz=100.0,
              cmd_hz=50.0, episodes=(('pick the red cube', 1),), with_events=True,
              with_command=True, size=(24, 32), start_ns=1_000_000_000, joint_names=JOINTS,
              textured=False, camera_clock_ns=0, camera_drop_every=0, compressed=False,
              corrupt_frames=(), state_publishers=None, unnamed_state=False):
    """
    Write a bag; return the camera stamps (ns) of the frames written.

    ``camera_clock_ns`` is added to the camera's header stamps only (not to its receive times):
    a camera stamping with its own clock, or a skewed one. ``camera_drop_every`` N > 0 leaves
    out every Nth camera frame (frame numbers k with k % N == N - 1: a camera dropping frames).
    ``compressed`` writes JPEG CompressedImage frames; those in ``corrupt_frames`` hold bytes
    no decoder accepts. ``state_publishers`` (lists of joint names) publish the joint state as
    one message per list, as separate publishers would; ``unnamed_state`` publishes positions in
    ``joint_names`` order with an empty ``name``.

    ``episodes``: (instruction, end event kind) per episode, spread evenly over the recording,
    each taking its middle 80 %. Joint messages list their joints in reverse order to exercise the
    name lookup. ``textured`` adds a moving pattern, so video encoding costs what a camera would.
    """
    ts = store.types
    h, w = size
    numbers = np.arange(int(seconds * cam_hz))
    if camera_drop_every:
        numbers = numbers[numbers % camera_drop_every != camera_drop_every - 1]
    cam = start_ns + (numbers * 1e9 / cam_hz).astype(np.int64)
    joints = start_ns + (np.arange(int(seconds * joint_hz)) * 1e9 / joint_hz).astype(np.int64)
    cmds = start_ns + 3_000_000 + (np.arange(int(seconds * cmd_hz)) * 1e9 / cmd_hz).astype(
        np.int64)
    pattern = None
    if textured:
        yy, xx = np.mgrid[0:h, 0:w]
        pattern = ((np.sin(xx / 7.0) + np.cos(yy / 5.0)) * 40).astype(np.int16)
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        image_type = 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'
        c_img = writer.add_connection('/camera/image_raw', image_type, typestore=store)
        c_js = writer.add_connection('/joint_states', 'sensor_msgs/msg/JointState',
                                     typestore=store)
        c_cmd = writer.add_connection('/dit4dit/joint_command', 'sensor_msgs/msg/JointState',
                                      typestore=store) if with_command else None
        c_ev = writer.add_connection('/dit4dit/episode_event', 'dit4dit_msgs/msg/EpisodeEvent',
                                     typestore=store) if with_events else None
        msgs = []

        def camera_message(k, t):     # made while writing: a long bag never sits in memory
            data = np.full((h, w, 3), grey(k), np.uint8)
            if pattern is not None:
                shifted = np.roll(pattern, 3 * k, axis=1)[..., None] + data
                data = np.clip(shifted, 0, 255).astype(np.uint8)
            header = _header(store, int(t) + camera_clock_ns, 'head')
            if compressed:
                return ts[image_type](header=header, format='jpeg', data=_jpeg(
                    data, corrupt=k in corrupt_frames))
            return ts[image_type](header=header, height=h, width=w, encoding='rgb8',
                                  is_bigendian=0, step=w * 3, data=data.reshape(-1))

        for k, t in zip(numbers, cam):
            msgs.append((int(t) + 4_000_000, c_img, (int(k), int(t)), image_type))
        publishers = state_publishers or [list(reversed(joint_names))]
        for t in joints:
            values = {j: t * 1e-9 + 10 * i for i, j in enumerate(joint_names)}
            for p, names in enumerate(publishers):
                pos = np.array([values[j] for j in (joint_names if unnamed_state else names)])
                js = ts['sensor_msgs/msg/JointState'](
                    header=_header(store, int(t)), name=[] if unnamed_state else list(names),
                    position=pos, velocity=np.zeros(0), effort=np.zeros(0))
                msgs.append((int(t) + 1_000_000 + p, c_js, js, 'sensor_msgs/msg/JointState'))
        if with_command:
            for t in cmds:
                pos = np.array([t * 1e-9 + 100 + 10 * i for i in range(len(joint_names))])
                cmd = ts['sensor_msgs/msg/JointState'](
                    header=_header(store, int(t)), name=list(joint_names), position=pos,
                    velocity=np.zeros(0), effort=np.zeros(0))
                msgs.append((int(t) + 1_000_000, c_cmd, cmd, 'sensor_msgs/msg/JointState'))
        if with_events:
            ev_cls = ts['dit4dit_msgs/msg/EpisodeEvent']
            span = (cam[-1] - cam[0]) / len(episodes)
            for i, (instruction, end_kind) in enumerate(episodes):
                t0 = int(cam[0] + i * span + 0.1 * span)
                t1 = int(cam[0] + i * span + 0.9 * span)
                for t, kind in ((t0, 0), (t1, end_kind)):
                    ev = ev_cls(header=_header(store, t), event=kind, episode_index=i,
                                instruction=instruction, task='test', initial_state_index=-1,
                                message='')
                    msgs.append((t, c_ev, ev, 'dit4dit_msgs/msg/EpisodeEvent'))
        for log, conn, msg, typ in sorted(msgs, key=lambda m: m[0]):
            if conn is c_img:
                msg = camera_message(*msg)
            writer.write(conn, log, store.serialize_cdr(msg, typ))
    return cam


def make_dataset(root, seconds=4.0, size=(224, 224), fps=15,
                 episodes=(('reach the red cube', 1), ('reach the blue cube', 1))):
    """
    Write a synthetic bag under ``root/bag`` and convert it to a dataset at ``root/data``.

    A moving textured camera at ``size``, three joints, commands and episode events: enough for
    checking a training setup (``scripts/gpu_check.sh``) without a robot or a download. Returns
    the dataset directory.
    """
    from pathlib import Path

    from .bag_types import make_typestore
    from .convert import convert
    from .feature_map import FeatureMap

    root = Path(root)
    write_bag(root / 'bag', make_typestore(require=('dit4dit_msgs',)), seconds=seconds,
              size=tuple(size), textured=True, episodes=tuple(episodes))
    fmap = FeatureMap.from_dict({
        'fps': fps, 'reference': 'head',
        'cameras': {'head': {'topic': '/camera/image_raw'}},
        'state': {'topic': '/joint_states', 'joints': list(JOINTS)},
        'action': {'source': 'command', 'topic': '/dit4dit/joint_command'}})
    convert([root / 'bag'], fmap, root / 'data', progress=False)
    return root / 'data'


def main(argv=None):
    """``python -m dit4dit_train.synthetic_bags OUT``: a small synthetic bag and dataset."""
    import argparse

    parser = argparse.ArgumentParser(description='Write a synthetic bag (OUT/bag) and its '
                                     'LeRobot v3 dataset (OUT/data) for checking a setup.')
    parser.add_argument('output')
    parser.add_argument('--seconds', type=float, default=4.0)
    parser.add_argument('--size', default='224x224', help='camera HEIGHTxWIDTH')
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split('x'))
    data = make_dataset(args.output, seconds=args.seconds, size=(height, width))
    print(f'[synthetic] {args.seconds:g} s at {height}x{width}: dataset {data}', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
