"""
Data and training benchmark: ``python -m dit4dit_train.bench``; writes JSON.

1. Conversion: a synthetic 640x480, 30 fps bag (camera, 100 Hz joint states, 50 Hz joint
   commands, episode events) is converted at 30 fps by ``python -m dit4dit_train.convert`` in its
   own process: seconds recorded per second of conversion (multiples of real time) and that
   process's peak RSS.
2. The floor: the video encoder alone (the converter's codec, preset and CRF) on the same
   frames, in frames per second; the converter's throughput is reported as a fraction of it.
3. Training throughput (unless ``--skip-training``): the ``tiny`` preset trained for a few
   steps on the converted dataset
   (frames decoded from the 640x480 mp4 and resized in the loader), in samples per second.
"""

import argparse
import json
from pathlib import Path
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import av
import numpy as np

from .bag_types import make_typestore
from .feature_map import FeatureMap
from .lerobot_format import CRF, ENCODER, GOP, PIX_FMT, PRESET
from .synthetic_bags import write_bag
from .train import train
from .training import TrainConfig


MAP = {'fps': 30, 'reference': 'head', 'robot_type': 'bench',
       'cameras': {'head': {'topic': '/camera/image_raw', 'max_age_s': 0.05}},
       'state': {'topic': '/joint_states', 'joints': ['j0', 'j1', 'j2'], 'max_age_s': 0.02},
       'action': {'source': 'command', 'topic': '/dit4dit/joint_command', 'max_age_s': 0.03}}


def convert_in_child(bag: Path, output: Path, workdir: Path) -> dict:
    """Convert ``bag`` with the command in a child process; return its summary and peak RSS."""
    map_file = workdir / 'map.json'
    map_file.write_text(json.dumps(MAP))      # YAML is a superset of JSON
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.monotonic()
    res = subprocess.run([sys.executable, '-m', 'dit4dit_train.convert', str(bag), '--map',
                          str(map_file), '--output', str(output), '--no-progress'],
                         capture_output=True, text=True)
    elapsed = time.monotonic() - t
    if res.returncode:
        raise RuntimeError(f'convert failed: {res.stderr[-2000:]}')
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss      # KiB on Linux
    info = json.loads((output / 'meta' / 'info.json').read_text())
    return {'frames': info['total_frames'], 'elapsed_s': elapsed,
            'peak_rss_mb': (peak if peak > before else float('nan')) / 1024,
            'summary_line': res.stdout.strip().splitlines()[-1]}


def encoder_floor(frames: int, size=(480, 640)) -> dict:
    """Return the video encoder's own speed on the bench's frames (frames made beforehand)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    pattern = ((np.sin(xx / 7.0) + np.cos(yy / 5.0)) * 40).astype(np.int16)
    images = [np.clip(np.roll(pattern, 3 * k, axis=1)[..., None]
                      + np.full((h, w, 3), 10 + 4 * (k % 61), np.int16), 0, 255).astype(np.uint8)
              for k in range(frames)]
    with tempfile.TemporaryDirectory() as tmp:
        container = av.open(str(Path(tmp) / 'floor.mp4'), mode='w')
        stream = container.add_stream(ENCODER, rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, PIX_FMT
        stream.codec_context.gop_size = GOP
        stream.options = {'crf': str(CRF), 'preset': PRESET}
        t = time.monotonic()
        for k, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format='rgb24')
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        container.close()
        elapsed = time.monotonic() - t
    return {'encoder': ENCODER, 'preset': PRESET, 'crf': CRF, 'frames': frames,
            'frames_per_s': frames / elapsed}


def run(seconds: float, steps: int, batch_size: int, workdir: Path, training=True) -> dict:
    """Return the benchmark report."""
    store = make_typestore(require=('dit4dit_msgs',))
    bag = workdir / 'bag'
    t = time.monotonic()
    write_bag(bag, store, seconds=seconds, size=(480, 640), textured=True,
              episodes=(('pick the red cube', 1), ('push the blue cube', 1)))
    write_s = time.monotonic() - t
    FeatureMap.from_dict(MAP)
    conv = convert_in_child(bag, workdir / 'data', workdir)
    floor = encoder_floor(min(conv['frames'], 600))
    report = {
        'bag': {'seconds': seconds, 'resolution': [480, 640], 'fps': 30,
                'bytes': sum(p.stat().st_size for p in bag.iterdir()), 'write_s': write_s},
        'conversion': {**conv, 'recorded_s': seconds,
                       'realtime_factor': seconds / conv['elapsed_s'],
                       'frames_per_s': conv['frames'] / conv['elapsed_s'],
                       'fraction_of_encoder': conv['frames'] / conv['elapsed_s']
                       / floor['frames_per_s']},
        'encoder_floor': floor}
    if not training:
        return report
    cfg = TrainConfig(dataset=str(workdir / 'data'), output=str(workdir / 'run'), preset='tiny',
                      steps=steps, batch_size=batch_size, save_every=steps, log_every=1,
                      warmup_steps=1)
    summary = train(cfg, progress=False)
    report['training'] = {'preset': 'tiny', 'steps': summary['trained_steps'],
                          'batch_size': batch_size, 'elapsed_s': summary['elapsed_s'],
                          'samples_per_s': summary['samples_per_s']}
    return report


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='length of the bag')
    parser.add_argument('--steps', type=int, default=20, help='training steps to time')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--skip-training', action='store_true', help='conversion only')
    parser.add_argument('--out', default='', help='write the JSON report here')
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix='dit4dit_bench_'))
    try:
        report = run(args.seconds, args.steps, args.batch_size, workdir,
                     training=not args.skip_training)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + '\n')
    else:
        print(text)
    c, f, t = report['conversion'], report['encoder_floor'], report.get('training')
    print(f'[bench] conversion of a {args.seconds:g} s 640x480 30 fps bag: '
          f"{c['realtime_factor']:.2f}x real time ({c['frames_per_s']:.1f} frames/s, "
          f"{c['fraction_of_encoder']:.0%} of {f['encoder']} {f['preset']}'s own "
          f"{f['frames_per_s']:.0f} frames/s), peak RSS {c['peak_rss_mb']:.0f} MB"
          + (f"; tiny training: {t['samples_per_s']:.1f} samples/s at batch {t['batch_size']}"
             if t else '') + (f'; JSON: {args.out}' if args.out else ''))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
