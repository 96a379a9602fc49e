"""
Latency benchmark of one policy query at batch 1: ``python -m dit4dit_policy.bench``.

Reports, as JSON (and one summary line):
- the per-stage breakdown of a query (instruction look-up, latent encode, video pass to the tap
  block, action Euler steps) and its total;
- each stage measured alone, and query / sum-of-parts (how much the stages cost together beyond
  their own work: allocation, cache effects, Python overhead);
- the official recipe with the same weights (the current frame zero-padded to the clip and all
  of it VAE-encoded, the video DiT run through all blocks and the output head, the instruction
  encoded on every query) and its ratio to our query (one frame encoded, as the causal VAE
  allows; blocks after the tap never run; the instruction cached);
- the FLOPs of each stage, counted by torch's FlopCounterMode on one pass (attention included),
  and the official recipe's over the early exit's.

``--random-weights`` builds the preset's real architecture with random weights and reads no
local directory (the 2B preset's Wan VAE and Cosmos transformer included), so the paper-scale
benchmark runs on any machine:

    python -m dit4dit_policy.bench --preset cosmos-predict2.5-2b --random-weights \
        --override text.encoder=bytes --iters 1 --warmup 0    # 2 CPU cores: about 3.5 minutes
"""

import argparse
import json
import os
from pathlib import Path
import platform
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from .inference import Observation, PolicyRunner
from .model.config import preset
from .model.dit4dit import DiT4DiT
from .model.normalization import identity_normalizer
from .model.random_weights import random_model


def _stats(samples):
    ordered = sorted(samples)
    return {'p50_ms': 1e3 * statistics.median(ordered),
            'p90_ms': 1e3 * ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
            'mean_ms': 1e3 * statistics.fmean(ordered)}


def _time(fn, iters, device):
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        out.append(time.perf_counter() - t)
    return out


def peak_memory_mb(device) -> float:
    """Return this process's peak memory: allocated on the GPU, else resident on the host."""
    if torch.device(device).type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sdpa_flops(query, key, value, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query, key, value)


def _flops(fn) -> int:
    """Return the FLOPs of one call of ``fn`` (CPU attention counted too: torch leaves it out)."""
    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return int(counter.get_total_flops())


def make_runner(args):
    """Return a PolicyRunner from --checkpoint, or a randomly initialised --preset."""
    dtype = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[args.dtype]
    if args.checkpoint:
        return PolicyRunner.from_checkpoint(args.checkpoint, device=args.device, dtype=dtype)
    cfg = preset(args.preset, args.override)
    if args.random_weights:
        model = random_model(cfg, seed=0)
    else:
        try:
            torch.manual_seed(0)
            model = DiT4DiT(cfg)
        except ValueError as exc:
            raise SystemExit(f'[bench] {exc}\n[bench] no local weights? --random-weights builds '
                             'the same architecture with random weights') from None
    a = cfg.action
    normalizer = identity_normalizer(a.action_dim, a.state_dim, a.real_action_dim,
                                     a.real_state_dim)
    return PolicyRunner(model, normalizer, device=args.device, dtype=dtype)


def run(args) -> dict:
    """Run the benchmark and return the report."""
    torch.set_num_threads(args.threads or torch.get_num_threads())
    runner = make_runner(args)
    cfg, device = runner.config, runner.device
    rng = np.random.default_rng(0)
    h, w = args.camera_height, args.camera_width
    obs = Observation(
        images=[rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                for _ in range(cfg.video.num_views)],
        state=rng.uniform(-1, 1, runner.normalizer.raw_state_dim), instruction='pick up the cube')
    for i in range(args.warmup):
        runner.predict(obs, seed=i)

    queries = [runner.predict(obs, seed=i) for i in range(args.iters)]
    stages = {k: _stats([q.timings[k] for q in queries])
              for k in ('instruction', 'encode', 'video', 'action', 'total')}

    # Each stage alone, on the same inputs.
    model, dtype = runner.model, runner.dtype
    views = [torch.from_numpy(img)[None, None].to(device) for img in obs.images]
    text = runner.instructions.get(obs.instruction)[None].to(device, dtype)
    frame = runner.model_frames(views)
    cond, mask = (x.to(dtype) for x in model.condition(frame))
    state = torch.from_numpy(runner.normalizer.encode_state(obs.state))[None].to(device, dtype)
    with torch.no_grad():
        features = model.feature_pass(cond, mask, text)
        alone = {
            'instruction': _time(lambda: runner.instructions.get(obs.instruction), args.iters,
                                 device),
            'encode': _time(lambda: model.condition(runner.model_frames(views)),
                            args.iters, device),
            'video': _time(lambda: model.feature_pass(cond, mask, text), args.iters, device),
            'action': _time(lambda: runner.normalizer.unnormalize_actions(
                model.sample_actions(features, state)[0].float().cpu().numpy()),
                args.iters, device),
        }

        # The official recipe: the padded clip encoded, all video blocks and the head, the
        # instruction encoded every time.
        encoder = runner.instructions.encoder
        t_future = model.video.frame_timesteps(
            torch.full((1,), cfg.video.feature_flow_time, device=device), cond.shape[2])

        def official():
            emb = encoder.encode(obs.instruction)[None].to(device, dtype)
            c, m = (x.to(dtype) for x in model.condition_padded(runner.model_frames(views)))
            x = m * c + (1 - m) * torch.randn_like(c)
            _, feats = model.video.velocity_and_features(x, m, t_future.to(dtype), emb)
            runner.normalizer.unnormalize_actions(
                model.sample_actions(feats, state)[0].float().cpu().numpy())
        official_times = _time(official, args.iters, device)

        flops = {
            'encode': _flops(lambda: model.condition(runner.model_frames(views))),
            'encode_padded_clip': _flops(lambda: model.condition_padded(
                runner.model_frames(views))),
            'video_to_tap': _flops(lambda: model.feature_pass(cond, mask, text)),
            'video_all_blocks': _flops(lambda: model.video.velocity_and_features(
                cond, mask, t_future.to(dtype), text)),
            'action': _flops(lambda: model.sample_actions(features, state)),
        }
    flops['query'] = flops['encode'] + flops['video_to_tap'] + flops['action']
    flops['official'] = flops['encode_padded_clip'] + flops['video_all_blocks'] + flops['action']
    flops['official_over_query'] = flops['official'] / max(flops['query'], 1)

    parts = {k: _stats(v) for k, v in alone.items()}
    sum_parts = sum(v['p50_ms'] for v in parts.values())
    report = {
        'preset': cfg.preset, 'checkpoint': args.checkpoint or None, 'device': str(device),
        'dtype': args.dtype, 'threads': torch.get_num_threads(), 'cpu': platform.processor(),
        'batch': 1, 'iterations': args.iters, 'tokens': cfg.video.num_tokens,
        'tap_block': cfg.video.tap_block, 'video_blocks': cfg.video.num_layers,
        'euler_steps': cfg.action.num_inference_steps,
        'query': stages, 'parts_alone': parts, 'sum_of_parts_p50_ms': sum_parts,
        'query_over_sum_of_parts': stages['total']['p50_ms'] / sum_parts,
        'official_recipe': _stats(official_times),
        'official_over_query': _stats(official_times)['p50_ms'] / stages['total']['p50_ms'],
        'flops': flops, 'random_weights': bool(args.random_weights or not args.checkpoint),
        'query_hz': 1e3 / stages['total']['p50_ms'],
        'peak_memory_mb': peak_memory_mb(device),
        'peak_memory_kind': 'cuda allocated' if device.type == 'cuda' else 'host resident',
    }
    return report


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_policy bench``)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', default='tiny', help='model preset when no checkpoint')
    parser.add_argument('--checkpoint', default='', help='checkpoint directory to load')
    parser.add_argument('--random-weights', action='store_true',
                        help="the preset's architecture with random weights, no local "
                        'directories read (the Wan VAE too); no download')
    parser.add_argument('--override', action='append', default=[],
                        help='config override section.key=value (repeatable)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=('fp32', 'bf16', 'fp16'), default='fp32')
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--camera-height', type=int, default=480)
    parser.add_argument('--camera-width', type=int, default=640)
    parser.add_argument('--out', default='', help='write the JSON report here')
    args = parser.parse_args(argv)
    if args.random_weights and args.checkpoint:
        parser.error('--random-weights builds a model; --checkpoint loads one: choose one')
    report = run(args)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + '\n')
    else:
        print(text)
    q = report['query']
    print(f"[bench] {report['preset']} on {report['device']}: query p50 "
          f"{q['total']['p50_ms']:.1f} ms = {report['query_hz']:.2f} Hz, peak memory "
          f"{report['peak_memory_mb']:.0f} MB (instruction {q['instruction']['p50_ms']:.2f}, "
          f"encode {q['encode']['p50_ms']:.1f}, video {q['video']['p50_ms']:.1f}, action "
          f"{q['action']['p50_ms']:.1f}); query/sum-of-parts "
          f"{report['query_over_sum_of_parts']:.2f}; official recipe "
          f"{report['official_over_query']:.2f}x slower, "
          f"{report['flops']['official_over_query']:.2f}x the FLOPs "
          f"({report['flops']['query'] / 1e12:.3g} TFLOP per query)"
          + (f'; JSON: {args.out}' if args.out else ''), flush=True)
    return 0


if __name__ == '__main__':
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    raise SystemExit(main())
