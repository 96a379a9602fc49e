"""
Does a policy act on its instruction? ``python -m dit4dit_train.evaluate_instruction``.

    python -m dit4dit_train.evaluate_instruction --checkpoint RUN/checkpoint --dataset DATA \
        [--episodes 600 601 ...] [--output EVAL/instruction.json]

For data that records each scene several times under different instructions
(``collect_demos every_target:=true``: the same initial state, each cube named in turn). Episodes
that follow one another with the same first frame form a scene. From that frame the policy is asked
for its chunk under each of the scene's instructions; a choice is right when the predicted chunk
lies closer (mean squared error over the normalised actions) to the demonstration of its own
instruction than to the others'. Chance is 1/k for k instructions, and a policy that ignores the
instruction scores about chance. On scenes the policy never saw, this is a minute-long check of
what closed-loop evaluation measures in many (the choice of the target), without a simulator.
"""

import argparse
import json
from pathlib import Path
import sys
import typing

import numpy as np

from .dataset import LeRobotDataset


def group_scenes(first_frames: typing.Sequence[np.ndarray], instructions: typing.Sequence[str],
                 tolerance: float = 6.0) -> typing.List[typing.List[int]]:
    """
    Return runs of consecutive positions that show one scene under different instructions.

    Two episodes share a scene when their first frames differ by at most ``tolerance`` grey levels
    on average (video compression leaves a little) and their instructions differ; runs of one
    episode are dropped.
    """
    scenes, current = [], []
    for i, (frame, text) in enumerate(zip(first_frames, instructions)):
        same = bool(current) and np.mean(np.abs(
            frame.astype(np.float32) - first_frames[current[0]].astype(np.float32))) <= tolerance
        if same and text not in [instructions[j] for j in current]:
            current.append(i)
            continue
        if len(current) > 1:
            scenes.append(current)
        current = [i]
    if len(current) > 1:
        scenes.append(current)
    return scenes


def choice_accuracy(predicted: np.ndarray, demonstrated: np.ndarray) -> typing.Tuple[int, float]:
    """
    Return (right choices, instruction spread) for one scene.

    ``predicted`` and ``demonstrated`` are [k, H, D] chunks, row i under instruction i. A choice is
    right when predicted chunk i is nearest to demonstrated chunk i. The spread is the mean
    absolute difference between the predicted chunks of different instructions, relative to the
    demonstrations' own (0: the instruction changes nothing; 1: as much as it should).
    """
    k = len(predicted)
    dist = ((predicted[:, None] - demonstrated[None]) ** 2).mean(axis=(2, 3))
    right = int((dist.argmin(axis=1) == np.arange(k)).sum())
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    pred = np.mean([np.abs(predicted[i] - predicted[j]).mean() for i, j in pairs])
    demo = np.mean([np.abs(demonstrated[i] - demonstrated[j]).mean() for i, j in pairs])
    return right, float(pred / demo) if demo > 0 else 0.0


def evaluate_instruction(checkpoint, dataset_root, episodes=None, frame=0, seed=0,
                         tolerance=6.0, progress=True) -> dict:
    """Run the check; return the result dict (see the module docstring)."""
    from dit4dit_policy.inference import Observation, PolicyRunner
    from tqdm import tqdm

    runner = PolicyRunner.from_checkpoint(checkpoint)
    horizon = runner.config.action.chunk_size
    data = LeRobotDataset(dataset_root, frame_indices=(0,), chunk_size=horizon,
                          episodes=None if episodes is None else list(episodes))
    items = []
    for start, end in sorted(data.episode_bounds().values()):
        if end - start > frame:
            items.append(data[start + frame])
    views = [np.asarray(item['images'][0]) for item in items]
    scenes = group_scenes([v[0] for v in views], [item['instruction'] for item in items],
                          tolerance)
    if not scenes:
        raise ValueError(f'{dataset_root}: no two consecutive episodes share a first frame under '
                         'different instructions (record with collect_demos every_target:=true)')
    norm = runner.normalizer
    right = total = 0
    spreads, per_scene = [], []
    for scene in tqdm(scenes, desc='scenes', disable=not progress):
        predicted, demonstrated = [], []
        for i in scene:
            item = items[i]
            obs = Observation([np.asarray(v) for v in views[i]],
                              np.asarray(item['state'], np.float64), item['instruction'])
            predicted.append(norm.normalize_actions(runner.predict(obs, seed=seed).actions))
            demonstrated.append(norm.normalize_actions(np.asarray(item['actions'])))
        hits, spread = choice_accuracy(np.stack(predicted), np.stack(demonstrated))
        right += hits
        total += len(scene)
        spreads.append(spread)
        per_scene.append({'episodes': [int(items[i]['episode_index']) for i in scene],
                          'right': hits, 'spread': spread})
    chance = float(np.mean([1.0 / len(s) for s in scenes]))
    return {'checkpoint': str(checkpoint), 'dataset': str(dataset_root), 'frame': frame,
            'scenes': len(scenes), 'choices': total, 'accuracy': right / total,
            'chance': chance, 'spread': float(np.mean(spreads)), 'per_scene': per_scene}


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_train evaluate_instruction``)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--dataset', required=True)
    parser.add_argument('--episodes', type=int, nargs='+', default=None,
                        help='episode indices to use (default: all), e.g. scenes held out of '
                        'training')
    parser.add_argument('--frame', type=int, default=0, help='episode frame to query from')
    parser.add_argument('--tolerance', type=float, default=6.0,
                        help='mean grey-level difference of first frames within one scene')
    parser.add_argument('--output', default='', help='write the result as JSON here')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    try:
        result = evaluate_instruction(args.checkpoint, args.dataset, args.episodes, args.frame,
                                      tolerance=args.tolerance, progress=not args.no_progress)
    except ValueError as exc:
        parser.exit(2, f'evaluate_instruction: {exc}\n')
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + '\n')
    print(f"[evaluate_instruction] {result['scenes']} scenes, {result['choices']} choices: "
          f"{100 * result['accuracy']:.0f} % right (chance {100 * result['chance']:.0f} %), "
          f"instruction spread {result['spread']:.2f} of the demonstrations'"
          + (f'; {args.output}' if args.output else ''), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
