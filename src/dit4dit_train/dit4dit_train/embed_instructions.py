"""
Precompute the instruction embeddings of a dataset: ``python -m dit4dit_train.embed_instructions``.

    python -m dit4dit_train.embed_instructions --config RECIPE.yaml --dataset DATA \
        --cache-dir EMB [--device cuda] [--instruction TEXT ...]

Every task of the dataset (``meta/tasks.parquet`` and the episodes' task lists, with each renaming
the recipe's ``colour_swap`` can draw) is encoded once by the recipe's text encoder and written
to ``EMB`` under a key that names the encoder's whole recipe. A training run with
``text_cache=EMB`` then reads them and never builds the encoder: for the 2B preset that keeps
the 7B Qwen2.5-VL out of the training loop and off the training GPUs. Already cached
instructions are skipped, so the command is cheap to re-run after adding episodes; the policy
node can use the same directory (``text_cache_dir``) at deployment.
"""

import argparse
import os
from pathlib import Path
import sys
import time


def dataset_instructions(root) -> list:
    """Return the distinct instructions of a LeRobot v3 dataset, in first-seen order."""
    from .lerobot_format import read_episodes, read_info, read_tasks

    read_info(root)                     # a clear error when ``root`` is not a dataset
    found = list(read_tasks(root).values())
    for episode in read_episodes(root, ['episode_index', 'tasks']):
        found.extend(episode.get('tasks') or [])
    return list(dict.fromkeys(t for t in found if t and str(t).strip()))


def embed(cfg, cache_dir, instructions, device=None, progress=print) -> dict:
    """Encode every instruction not yet in ``cache_dir``; return a summary."""
    from dit4dit_policy.model import preset
    from dit4dit_policy.model.text_encoder import InstructionCache, make_text_encoder

    from .training import ColourSwap

    texts = list(dict.fromkeys(instructions))
    if cfg.colour_swap:
        swap = ColourSwap(cfg.colour_swap, cfg.seed)
        texts = list(dict.fromkeys(v for t in texts for v in swap.variants(t)))
    text_cfg = preset(cfg.preset, cfg.model).text
    cache = InstructionCache(make_text_encoder(text_cfg, device=device), cache_dir)
    t0 = time.monotonic()
    encoded = 0
    for i, text in enumerate(texts, 1):
        if cache.contains(text):
            progress(f'[embed] {i}/{len(texts)} cached: {text!r}')
            continue
        start = time.monotonic()
        cache.get(text)
        encoded += 1
        progress(f'[embed] {i}/{len(texts)} encoded in {time.monotonic() - start:.2f} s: '
                 f'{text!r}')
    return {'instructions': len(texts), 'encoded': encoded, 'cached': len(texts) - encoded,
            'encoder': cache.encoder.identity, 'cache_dir': str(cache_dir),
            'elapsed_s': time.monotonic() - t0}


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_train embed_instructions``)."""
    from .training import TrainConfig

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--config', default='', help='the training recipe (its preset, model '
                        'overrides and colour_swap choose the encoder and the instructions)')
    parser.add_argument('--dataset', default='', help='LeRobot v3 dataset directory')
    parser.add_argument('--cache-dir', required=True, help='where the embeddings go (the '
                        "run's text_cache)")
    parser.add_argument('--instruction', action='append', default=[],
                        help='an instruction to add (repeatable; e.g. ones used only live)')
    parser.add_argument('--device', default=None, help='where the text encoder runs '
                        '(default: cpu)')
    parser.add_argument('overrides', nargs='*', help='TrainConfig key=value, as for training')
    args = parser.parse_args(argv)
    cfg = TrainConfig.load(args.config or None, list(args.overrides))
    dataset = args.dataset or cfg.dataset
    instructions = list(args.instruction)
    if dataset:
        instructions = dataset_instructions(dataset) + instructions
    if not instructions:
        parser.error('no instructions: give --dataset (or dataset= in the recipe) or '
                     '--instruction')
    summary = embed(cfg, Path(args.cache_dir), instructions, device=args.device,
                    progress=lambda line: print(line, flush=True))
    print(f"[embed] {summary['instructions']} instructions: {summary['encoded']} encoded, "
          f"{summary['cached']} already cached, in {summary['elapsed_s']:.1f} s; "
          f"{summary['cache_dir']} (encoder {summary['encoder']})", flush=True)
    return 0


if __name__ == '__main__':
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    sys.exit(main())
