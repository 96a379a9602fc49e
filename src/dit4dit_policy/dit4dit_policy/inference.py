"""
The inference runtime: raw observation in, raw action chunk out, with a latency breakdown.

ROS-free. The policy node (and the benchmark, and closed-loop evaluation) call ``PolicyRunner``:
it holds the model, the normalisation that travelled with the weights and the instruction cache,
validates the observation, and times each stage of a query.
"""

from dataclasses import dataclass, field
import time
import typing

import numpy as np
import torch

from .contract import DEFAULT_RESIZE
from .model.checkpoint import load_checkpoint
from .model.dit4dit import to_model_frames
from .model.text_encoder import InstructionCache, make_text_encoder

STAGES = ('instruction', 'encode', 'video', 'action')


class ObservationError(ValueError):
    """An observation cannot be used (wrong shape, NaN, missing instruction)."""


@dataclass
class Observation:
    """One query: the current image of each view (H, W, 3 uint8 RGB), raw state, instruction."""

    images: typing.List[np.ndarray]
    state: np.ndarray
    instruction: str


@dataclass
class Prediction:
    """Raw actions [chunk, raw_action_dim] and the time spent per stage (seconds)."""

    actions: np.ndarray
    timings: typing.Dict[str, float] = field(default_factory=dict)


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class PolicyRunner:
    """Load once, answer queries; thread-compatible (one query at a time)."""

    def __init__(self, model, normalizer, device='cpu', text_cache_dir='', dtype=None,
                 resize=DEFAULT_RESIZE):
        """
        Wrap a loaded model; see ``from_checkpoint``.

        ``from_checkpoint`` takes ``resize`` from the checkpoint's contract (the rule it was
        trained with).
        """
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if dtype is not None:
            self.model.video.to(dtype)
            self.model.action.to(dtype)
        self.dtype = dtype or torch.float32
        self.normalizer = normalizer
        self.config = model.config
        self.manifest = {}
        self.contract = None        # the checkpoint's PolicyContract (from_checkpoint)
        self.resize = resize
        cfg = self.config.text
        # A cache miss of a model encoder (cosmos_reason1) runs it where the policy runs.
        self.instructions = InstructionCache(make_text_encoder(cfg, device=self.device),
                                             text_cache_dir or cfg.cache_dir)

    @classmethod
    def from_checkpoint(cls, path, device='cpu', text_cache_dir='', dtype=None):
        """Load a checkpoint directory (verified; see model.checkpoint)."""
        model, normalizer, manifest, contract = load_checkpoint(path, device=device)
        runner = cls(model, normalizer, device=device, text_cache_dir=text_cache_dir, dtype=dtype,
                     resize=contract.resize)
        runner.manifest, runner.contract = manifest, contract
        return runner

    def model_frames(self, views):
        """Return the model's frame from [1, 1, H, W, 3] views, by the checkpoint's resize."""
        return to_model_frames(views, self.config.video.image_size, self.resize)

    def validate(self, obs: Observation):
        """Raise ObservationError if ``obs`` cannot be used by this model."""
        views = self.config.video.num_views
        if len(obs.images) != views:
            raise ObservationError(f'{len(obs.images)} camera images, the model takes {views}')
        for i, img in enumerate(obs.images):
            img = np.asarray(img)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ObservationError(f'image {i}: expected (H, W, 3) uint8, got {img.shape} '
                                       f'{img.dtype}')
        state = np.asarray(obs.state, dtype=np.float64)
        if state.shape != (self.normalizer.raw_state_dim,):
            raise ObservationError(f'state has shape {state.shape}, expected '
                                   f'({self.normalizer.raw_state_dim},)')
        if not np.all(np.isfinite(state)):
            raise ObservationError('state contains NaN or inf')
        if not obs.instruction.strip():
            raise ObservationError('no task instruction')

    @torch.no_grad()
    def predict(self, obs: Observation, seed: typing.Optional[int] = None,
                guide=None) -> Prediction:
        """
        Return the raw action chunk for ``obs``; deterministic when ``seed`` is given.

        ``guide`` (``runtime.inpainting.Guide``: raw actions [G, D] and weights [G]) makes the
        chunk's first actions reproduce the ones already being executed (real-time chunking).
        """
        self.validate(obs)
        guide_actions = guide_weights = None
        if guide is not None and len(guide.weights):
            raw = np.asarray(guide.actions, dtype=np.float64)
            if raw.ndim != 2 or raw.shape[1] != self.normalizer.raw_action_dim or \
                    not np.all(np.isfinite(raw)):
                raise ObservationError(f'guide actions have shape {raw.shape}, expected '
                                       f'(G, {self.normalizer.raw_action_dim}) finite')
            guide_actions = torch.from_numpy(self.normalizer.normalize_actions(raw))[None]
            guide_actions = guide_actions.to(self.device)
            guide_weights = torch.as_tensor(np.asarray(guide.weights, np.float32))
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(seed)
        timings = {}
        t0 = time.perf_counter()
        text = self.instructions.get(obs.instruction)[None].to(self.device, self.dtype)
        t1 = time.perf_counter()
        views = [torch.from_numpy(np.array(img, dtype=np.uint8))[None, None].to(self.device)
                 for img in obs.images]
        frame = self.model_frames(views)
        cond, mask = self.model.condition(frame, generator=gen)
        cond, mask = cond.to(self.dtype), mask.to(self.dtype)
        state = torch.from_numpy(self.normalizer.encode_state(obs.state))[None]
        state = state.to(self.device, self.dtype)
        _sync(self.device)
        t2 = time.perf_counter()
        features = self.model.feature_pass(cond, mask, text, generator=gen)
        _sync(self.device)
        t3 = time.perf_counter()
        actions = self.model.sample_actions(features, state, generator=gen, guide=guide_actions,
                                            guide_weights=guide_weights)
        _sync(self.device)
        t4 = time.perf_counter()
        raw = self.normalizer.unnormalize_actions(actions[0].float().cpu().numpy())
        t5 = time.perf_counter()
        timings = {'instruction': t1 - t0, 'encode': t2 - t1, 'video': t3 - t2,
                   'action': t4 - t3 + (t5 - t4), 'total': t5 - t0}
        return Prediction(actions=raw.astype(np.float32), timings=timings)

    @torch.no_grad()
    def imagine(self, obs: Observation, steps: int = 10,
                seed: typing.Optional[int] = None) -> np.ndarray:
        """
        Return the imagined future [T, H, W, 3] uint8 (frame 0 is the observation) for ``obs``.

        Runs the full video sampler and the decoder: for visualisation only, many times the cost
        of a query; the action path never needs it.
        """
        self.validate(obs)
        gen = None
        if seed is not None:
            gen = torch.Generator(device=self.device).manual_seed(seed)
        text = self.instructions.get(obs.instruction)[None].to(self.device, self.dtype)
        views = [torch.from_numpy(np.array(img, dtype=np.uint8))[None, None].to(self.device)
                 for img in obs.images]
        frame = self.model_frames(views)
        clip = self.model.imagine(frame, text, steps=steps, generator=gen)[0].float()
        rgb = ((clip.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)     # [3, T, H, W]
        return rgb.permute(1, 2, 3, 0).cpu().numpy()
