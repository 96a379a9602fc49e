"""
Data and training benchmark: ``python -m dit4dit_train.bench``; writes JSON.

1. Conversion speed: a synthetic 640x480, 30 fps bag (camera, 100 Hz joint states, 50 Hz joint
   commands, episode events) is converted at 30 fps; reported as seconds recorded per second of
   conversion (multiples of real time).
2. Training throughput: the ``tiny`` preset trained for a few steps on the converted dataset
   (frames decoded from the 640x480 mp4 and resized in the loader), in samples per second.
"""

import argparse
import json
from pathlib import Path
import shutil
import tempfile
import time

from .bag_types import make_typestore
from .convert import convert
from .feature_map import FeatureMap
from .synthetic_bags import write_bag
from .train import train
from .training import TrainConfig


def run(seconds: float, steps: int, batch_size: int, workdir: Path) -> dict:
    """Return the benchmark report."""
    store = make_typestore(require=('dit4dit_msgs',))
    bag = workdir / 'bag'
    t = time.monotonic()
    write_bag(bag, store, seconds=seconds, size=(480, 640), textured=True,
              episodes=(('pick the red cube', 1), ('push the blue cube', 1)))
    write_s = time.monotonic() - t
    fmap = FeatureMap.from_dict({
        'fps': 30, 'reference': 'head',
        'cameras': {'head': {'topic': '/camera/image_raw', 'max_age_s': 0.05}},
        'state': {'topic': '/joint_states', 'joints': ['j0', 'j1', 'j2'], 'max_age_s': 0.02},
        'action': {'source': 'command', 'topic': '/dit4dit/joint_command', 'max_age_s': 0.03}})
    conv = convert([bag], fmap, workdir / 'data', progress=False)
    cfg = TrainConfig(dataset=str(workdir / 'data'), output=str(workdir / 'run'), preset='tiny',
                      steps=steps, batch_size=batch_size, save_every=steps, log_every=1,
                      warmup_steps=1)
    summary = train(cfg, progress=False)
    return {
        'bag': {'seconds': seconds, 'resolution': [480, 640], 'fps': 30,
                'bytes': sum(p.stat().st_size for p in bag.iterdir()), 'write_s': write_s},
        'conversion': {'frames': conv['frames'], 'elapsed_s': conv['elapsed_s'],
                       'recorded_s': conv['recorded_s'],
                       'realtime_factor': conv['realtime_factor'],
                       'frames_per_s': conv['frames'] / conv['elapsed_s']},
        'training': {'preset': 'tiny', 'steps': summary['trained_steps'],
                     'batch_size': batch_size, 'elapsed_s': summary['elapsed_s'],
                     'samples_per_s': summary['samples_per_s']},
    }


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--seconds', type=float, default=20.0, help='length of the bag')
    parser.add_argument('--steps', type=int, default=20, help='training steps to time')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--out', default='', help='write the JSON report here')
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix='dit4dit_bench_'))
    try:
        report = run(args.seconds, args.steps, args.batch_size, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + '\n')
    else:
        print(text)
    c, t = report['conversion'], report['training']
    print(f"[bench] conversion of a 640x480 30 fps bag: {c['realtime_factor']:.2f}x real time "
          f"({c['frames_per_s']:.1f} frames/s); tiny training: {t['samples_per_s']:.1f} "
          f"samples/s at batch {t['batch_size']}" + (f'; JSON: {args.out}' if args.out else ''))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
