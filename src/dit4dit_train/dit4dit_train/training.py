"""
Training building blocks, ROS-free: configuration, batches, optimiser groups and the schedule.

``train.py`` drives these with Hugging Face accelerate (one CPU process by default; ``accelerate
launch --num_processes N`` for GPUs and nodes).
"""

from dataclasses import asdict, dataclass, field, MISSING
import json
import math
from pathlib import Path
import typing

from dit4dit_policy.contract import DEFAULT_RESIZE, RESIZE_RULES
import numpy as np
import torch
import yaml


class TrainConfigError(ValueError):
    """A training configuration value is invalid."""


@dataclass
class TrainConfig:
    """Everything a training run needs besides the model configuration."""

    dataset: str = ''
    output: str = ''
    preset: str = 'tiny'
    model: typing.List[str] = field(default_factory=list)       # model overrides key=value
    camera_keys: typing.Optional[typing.List[str]] = None       # None: every video feature
    state_keys: typing.Dict[str, int] = field(default_factory=dict)   # sin/cos groups
    val_episodes: typing.List[int] = field(default_factory=list)      # held out of training
    steps: int = 1000
    stop_after: int = 0             # stop (state saved) after this many steps of this run
    batch_size: int = 8
    num_workers: int = 0
    lr_video: float = 1e-4
    lr_action: float = 1e-4
    weight_decay: float = 1e-8
    betas: typing.Tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    save_every: int = 500
    keep_states: int = 2
    log_every: int = 10
    seed: int = 42
    # Extra sampling weight of an episode's first frames, w = 1 + start_weight * exp(-t / 3):
    # where the policy chooses its target; 0 samples every frame equally often.
    start_weight: float = 0.0
    mixed_precision: str = 'no'     # 'no' or 'bf16' (GPU)
    # How camera views are resized to the model's frame (dit4dit_policy.contract.RESIZE_RULES):
    # 'bilinear' is the official training resize; stored in the checkpoint's contract, so the
    # policy resizes at deployment exactly as it was trained.
    resize: str = DEFAULT_RESIZE
    # A directory of precomputed instruction embeddings (python -m
    # dit4dit_train.embed_instructions): read only, the text encoder is never built in the
    # training loop. Required for text.encoder=cosmos_reason1 (a 7B model); '' encodes in the
    # run (cheap encoders) into RUN/text_cache.
    text_cache: str = ''
    # Build the model with random weights and read no local directory (the 2B preset's Wan VAE
    # and Cosmos transformer included): for checks of the recipe's speed and memory
    # (scripts/gpu_check.sh), never for a policy.
    random_weights: bool = False
    # Optional augmentation for scenes whose objects are named by a primary colour, e.g.
    # {red: 0, green: 1, blue: 2} (word -> RGB channel): each sample's channels are permuted
    # among the named ones and its instruction renamed to match, so that the same layout asks
    # for another object and only the colour at a place explains the action. {}: off.
    colour_swap: typing.Dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        """Validate."""
        checks = [
            (self.steps >= 1, 'steps must be >= 1'),
            (self.batch_size >= 1, 'batch_size must be >= 1'),
            (self.lr_video >= 0 and self.lr_action > 0, 'learning rates must be positive'),
            (0 <= self.min_lr_ratio <= 1, 'min_lr_ratio must be in [0, 1]'),
            (self.warmup_steps >= 0, 'warmup_steps must be >= 0'),
            (self.start_weight >= 0, 'start_weight must be >= 0'),
            (self.save_every >= 1 and self.log_every >= 1, 'save_every/log_every must be >= 1'),
            (self.mixed_precision in ('no', 'bf16', 'fp16'),
             "mixed_precision: valid are 'no', 'bf16', 'fp16'"),
            (self.resize in RESIZE_RULES,
             f'resize {self.resize!r}: valid are {", ".join(RESIZE_RULES)}'),
            (_valid_colour_swap(self.colour_swap),
             'colour_swap maps 2-3 colour words to distinct RGB channels 0-2, e.g. '
             '{red: 0, green: 1, blue: 2}'),
        ]
        for ok, msg in checks:
            if not ok:
                raise TrainConfigError(msg)
        self.betas = tuple(self.betas)

    @classmethod
    def load(cls, path=None, overrides=()) -> 'TrainConfig':
        """
        Read a YAML/JSON file (optional) and apply overrides (YAML values).

        ``key=value`` sets a key; ``key+=value`` appends to a list key (e.g.
        ``model+=objective.video_loss=false`` adds one model override to a recipe's list).
        """
        data = {}
        if path:
            data = yaml.safe_load(Path(path).read_text()) or {}
        for item in overrides:
            key, sep, value = item.partition('=')
            if not sep:
                raise TrainConfigError(f'override {item!r} must look like key=value')
            key, text = key.strip(), value
            value = yaml.safe_load(text)
            if key in cls.__dataclass_fields__ and typing.get_type_hints(cls)[key] is str \
                    and not isinstance(value, str):
                value = text.strip()        # mixed_precision=no: the text, not YAML's False
            if key.endswith('+'):
                key = key[:-1].strip()
                spec = cls.__dataclass_fields__.get(key)
                current = data.get(key, spec.default_factory() if spec is not None and
                                   spec.default_factory is not MISSING else None)
                if not isinstance(current, list):
                    raise TrainConfigError(f'{key}+=: {key} is not a list key')
                value = current + (value if isinstance(value, list) else [value])
            data[key] = value
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise TrainConfigError(f'unknown training key(s) {", ".join(unknown)}; valid: '
                                   f'{", ".join(sorted(cls.__dataclass_fields__))}')
        hints = typing.get_type_hints(cls)
        for key, value in data.items():
            if hints[key] in (int, float) and isinstance(value, str):   # YAML reads 1e-3 as text
                try:
                    data[key] = hints[key](float(value))
                except ValueError:
                    raise TrainConfigError(f'{key}: {value!r} is not a number') from None
        return cls(**data)

    def dumps(self) -> str:
        """Return JSON text."""
        return json.dumps(asdict(self), indent=2) + '\n'


def _valid_colour_swap(words) -> bool:
    if not isinstance(words, dict):
        return False
    channels = list(words.values())
    return not words or (len(words) >= 2 and all(isinstance(w, str) and w.isalpha()
                                                 for w in words)
                         and len(set(channels)) == len(channels) and set(channels) <= {0, 1, 2})


def lr_lambda(warmup: int, total: int, min_ratio: float):
    """Return the schedule factor: linear warm-up, then cosine decay to ``min_ratio``."""
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def make_optimizer(model, cfg: TrainConfig):
    """Return AdamW with a video group and an action group (frozen parameters excluded)."""
    groups = model.parameter_groups()
    params = [{'params': groups['action'], 'lr': cfg.lr_action, 'name': 'action'}]
    if cfg.lr_video > 0:
        params.append({'params': groups['video'], 'lr': cfg.lr_video, 'name': 'video'})
    else:
        for p in groups['video']:
            p.requires_grad_(False)
    return torch.optim.AdamW(params, betas=cfg.betas, eps=1e-8, weight_decay=cfg.weight_decay)


class EpochSampler(torch.utils.data.Sampler):
    """
    An order that depends only on (seed, epoch): the same after a resume.

    Without ``weights`` an epoch is a permutation of the ``n`` items; with them, ``n`` draws
    with replacement in proportion to the weights.
    """

    def __init__(self, n: int, seed: int, weights=None):
        """Sample ``n`` items, optionally weighted."""
        self.n, self.seed, self.epoch = n, seed, 0
        self.weights = None
        if weights is not None:
            self.weights = torch.as_tensor(np.asarray(weights, np.float64))
            if self.weights.shape != (n,) or not bool((self.weights >= 0).all()) \
                    or float(self.weights.sum()) <= 0:
                raise ValueError(f'weights must be {n} non-negative values, not all zero')

    def set_epoch(self, epoch: int):
        """Choose the order of ``epoch``."""
        self.epoch = epoch

    def __iter__(self):
        """Yield the epoch's order."""
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        if self.weights is None:
            return iter(torch.randperm(self.n, generator=g).tolist())
        return iter(torch.multinomial(self.weights, self.n, replacement=True,
                                      generator=g).tolist())

    def __len__(self):
        """Return the number of items."""
        return self.n


def start_weights(bounds, n: int, start_weight: float):
    """
    Return per-sample weights 1 + start_weight * exp(-t / 3), t = frame index in its episode.

    ``bounds``: {episode: (first sample, end)} as ``LeRobotDataset.episode_bounds`` gives.
    """
    weights = np.ones(n)
    for first, end in bounds.values():
        weights[first:end] += start_weight * np.exp(-np.arange(end - first) / 3.0)
    return weights


class ColourSwap:
    """
    Permute the named RGB channels of each sample and rename its colour words to match.

    A draw is a function of (seed, step, process), so a resumed run repeats it exactly. Channel k
    of the new image is channel ``perm[k]`` of the old one: what was named by channel ``perm[k]``'s
    word is now named by channel k's.
    """

    def __init__(self, words: typing.Dict[str, int], seed: int):
        """Use ``words`` (colour word -> RGB channel, see TrainConfig.colour_swap)."""
        import re
        self.words = {w.lower(): int(c) for w, c in words.items()}
        self.word_of = {c: w for w, c in self.words.items()}
        self.channels = sorted(self.word_of)
        self.seed = int(seed)
        self.pattern = re.compile(r'\b(' + '|'.join(map(re.escape, self.words)) + r')\b',
                                  re.IGNORECASE)

    def variants(self, text: str) -> typing.List[str]:
        """Return every renaming of ``text`` a draw can produce (identity included)."""
        import itertools
        out = []
        for sources in itertools.permutations(self.channels):
            pairs = zip(self.channels, sources)
            new_word = {self.word_of[src]: self.word_of[k] for k, src in pairs}
            renamed = self.pattern.sub(
                lambda m: _same_case(m.group(0), new_word[m.group(0).lower()]), text)
            if renamed not in out:
                out.append(renamed)
        return out

    def __call__(self, clip, instructions, step: int, process: int = 0):
        """Return (clip [B, 3, ...] with permuted channels, renamed instructions)."""
        rng = np.random.default_rng([self.seed, int(step), int(process)])
        clip = clip.clone()
        renamed = []
        for i, text in enumerate(instructions):
            perm = list(range(3))
            for k, src in zip(self.channels, rng.permutation(self.channels)):
                perm[k] = int(src)
            clip[i] = clip[i, perm]
            new_word = {self.word_of[perm[k]]: self.word_of[k] for k in self.channels}
            renamed.append(self.pattern.sub(
                lambda m: _same_case(m.group(0), new_word[m.group(0).lower()]), text))
        return clip, renamed


def _same_case(old: str, new: str) -> str:
    return new.capitalize() if old[:1].isupper() else new


class Collate:
    """Turn dataset items into model-space tensors (picklable, so it runs in workers)."""

    def __init__(self, normalizer, image_size, action_mask, resize):
        """Use the run's normalisation, the model's frame size and the contract's resize."""
        self.normalizer, self.image_size = normalizer, tuple(image_size)
        self.resize = resize
        self.action_mask = torch.as_tensor(action_mask)

    def __call__(self, items):
        """Return a dict of batched tensors plus the instructions."""
        from dit4dit_policy.model import to_model_frames

        images = torch.stack([torch.as_tensor(it['images']) for it in items])  # [B,T,V,H,W,3]
        views = [images[:, :, v] for v in range(images.shape[2])]
        clip = to_model_frames(views, self.image_size, self.resize)
        state = np.stack([self.normalizer.encode_state(it['state']) for it in items])
        actions = np.stack([self.normalizer.normalize_actions(it['actions']) for it in items])
        mask = self.action_mask[None, None].expand(len(items), actions.shape[1], -1)
        return {'clip': clip, 'state': torch.from_numpy(state),
                'actions': torch.from_numpy(actions), 'action_mask': mask.clone(),
                'instructions': [it['instruction'] for it in items]}
