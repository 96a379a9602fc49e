"""
Open-loop evaluation on held-out episodes: ``python -m dit4dit_train.evaluate``.

    python -m dit4dit_train.evaluate --checkpoint RUN/checkpoint --dataset DATA --episodes 8 9
        --output EVAL

The policy is queried every ``stride`` frames (default: one chunk) on the recorded observation; its
chunk is compared with the recorded actions over the same frames (the chunks tile the episode, as
in the official offline evaluation). Writes ``metrics.json`` (MSE and MAE overall, per episode and
per joint) and one PNG per episode with predicted and recorded joint trajectories.
"""

import argparse
import json
from pathlib import Path
import sys

import numpy as np

from .dataset import LeRobotDataset


def evaluate(checkpoint, dataset_root, episodes, output, stride=0, max_joints=16, seed=0,
             progress=True) -> dict:
    """Run the evaluation; return the metrics dict (also written to ``output``)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    from dit4dit_policy.inference import Observation, PolicyRunner
    from tqdm import tqdm

    runner = PolicyRunner.from_checkpoint(checkpoint)
    cfg = runner.config
    stride = stride or cfg.action.chunk_size
    data = LeRobotDataset(dataset_root, frame_indices=(0,), chunk_size=cfg.action.chunk_size,
                          episodes=list(episodes))
    names = runner.normalizer.action_names or [f'a{i}' for i in range(
        runner.normalizer.raw_action_dim)]
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    per_episode, all_err = {}, []
    bounds = data.episode_bounds()
    for ep in tqdm(sorted(bounds), desc='episodes', disable=not progress):
        start, end = bounds[ep]
        pred, true = [], []
        for local in range(0, end - start, stride):
            item = data[start + local]
            images = [np.asarray(item['images'][0, v]) for v in range(item['images'].shape[1])]
            obs = Observation(images, np.asarray(item['state'], np.float64), item['instruction'])
            chunk = runner.predict(obs, seed=seed).actions
            n = min(stride, end - start - local)
            pred.append(chunk[:n])
            true.append(np.asarray(item['actions'])[:n])
        pred, true = np.concatenate(pred), np.concatenate(true)
        err = pred - true
        all_err.append(err)
        per_episode[int(ep)] = {'frames': int(len(err)), 'mse': float(np.mean(err ** 2)),
                                'mae': float(np.mean(np.abs(err)))}
        _plot(plt, out / f'episode_{ep:06d}.png', pred, true, names, max_joints,
              f'episode {ep}: {item["instruction"]}')
    err = np.concatenate(all_err)
    metrics = {
        'checkpoint': str(checkpoint), 'dataset': str(dataset_root), 'stride': stride,
        'episodes': per_episode, 'frames': int(len(err)), 'mse': float(np.mean(err ** 2)),
        'mae': float(np.mean(np.abs(err))),
        'per_joint_mae': {n: float(v) for n, v in zip(names, np.mean(np.abs(err), axis=0))},
    }
    (out / 'metrics.json').write_text(json.dumps(metrics, indent=2) + '\n')
    return metrics


def _plot(plt, path, pred, true, names, max_joints, title):
    joints = min(len(names), max_joints)
    cols = 4
    rows = (joints + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.2 * rows), squeeze=False)
    t = np.arange(len(true))
    for j in range(rows * cols):
        ax = axes[j // cols][j % cols]
        if j >= joints:
            ax.axis('off')
            continue
        ax.plot(t, true[:, j], label='recorded', color='black', linewidth=1.2)
        ax.plot(t, pred[:, j], label='predicted', color='tab:orange', linewidth=1.0)
        ax.set_title(names[j], fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_train evaluate``)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--dataset', required=True)
    parser.add_argument('--episodes', type=int, nargs='+', required=True, help='held-out episodes')
    parser.add_argument('--output', required=True)
    parser.add_argument('--stride', type=int, default=0, help='frames between queries')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    m = evaluate(args.checkpoint, args.dataset, args.episodes, args.output, args.stride,
                 progress=not args.no_progress)
    print(f"[evaluate] {len(m['episodes'])} episodes, {m['frames']} frames: action MSE "
          f"{m['mse']:.5f}, MAE {m['mae']:.5f}; plots and metrics.json in {args.output}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
