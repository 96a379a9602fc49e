"""
Train DiT4DiT on a LeRobot v3 dataset with accelerate: ``python -m dit4dit_train.train``.

    python -m dit4dit_train.train --dataset DATA --output RUN [--config train.yaml] [key=value ...]
    accelerate launch --num_processes 8 -m dit4dit_train.train ...          (GPUs, nodes)
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m dit4dit_train.train
        ...                                                          (CPU processes, gloo)

Normalisation statistics come from the training episodes and are stored in the checkpoint, with
the policy contract read from the dataset (fps, state and action joint names, camera views and
their image sizes): the robot side reads it instead of being told.
Every ``save_every`` steps the run writes, atomically, the deployable policy (``RUN/checkpoint``)
and the full training state (``RUN/state/step_N``: model, optimiser, schedule, RNGs); ``--resume``
continues from the newest state at exactly that step. Metrics go to ``RUN/metrics.jsonl``.
"""

import argparse
import json
import os
from pathlib import Path
import shutil
import sys
import time

import torch

from .dataset import LeRobotDataset
from .training import (Collate, ColourSwap, EpochSampler, lr_lambda, make_optimizer,
                       start_weights, TrainConfig)


def _dataset_info(root):
    return json.loads((Path(root) / 'meta' / 'info.json').read_text())


def dataset_contract(info: dict, camera_keys, state_key='observation.state',
                     action_key='action', resize=None):
    """
    Return the PolicyContract of a LeRobot v3 dataset's ``info.json`` for ``camera_keys``.

    Joint names come from the features' ``names`` (a list, or LeRobot's {'motors': [...]}); a
    dataset without them gets ``state_0 ..`` / ``action_0 ..``, which no robot profile has: the
    robot side then refuses the checkpoint by name instead of guessing.
    """
    from dit4dit_policy.contract import Camera, DEFAULT_RESIZE, PolicyContract

    features = info['features']

    def names(key):
        spec = features[key]
        given = spec.get('names')
        if isinstance(given, dict) and len(given) == 1:
            given = next(iter(given.values()))
        width = int(spec['shape'][0])
        if isinstance(given, list) and len(given) == width and all(given):
            return [str(n) for n in given]
        prefix = 'state' if key == state_key else 'action'
        print(f'[train] {key} has no joint names in info.json: the contract says '
              f'{prefix}_0..{prefix}_{width - 1}', flush=True)
        return [f'{prefix}_{i}' for i in range(width)]

    cameras = []
    for key in camera_keys:
        height, width = (int(v) for v in features[key]['shape'][:2])
        cameras.append(Camera(key.rsplit('.', 1)[-1] if key.startswith('observation.images.')
                              else key, height, width))
    return PolicyContract(fps=float(info['fps']), state_joints=names(state_key),
                          action_joints=names(action_key), cameras=cameras,
                          robot_type=str(info.get('robot_type') or ''),
                          resize=resize or DEFAULT_RESIZE)


def build(cfg: TrainConfig):
    """Return (model config, normalizer, train dataset, policy contract) for a run."""
    from dit4dit_policy.model import Normalizer, preset

    info = _dataset_info(cfg.dataset)
    episodes = [e for e in range(int(info['total_episodes'])) if e not in set(cfg.val_episodes)]
    if not episodes:
        raise ValueError('no training episodes left after removing val_episodes')
    model_cfg = preset(cfg.preset, cfg.model)
    if model_cfg.text.encoder == 'cosmos_reason1' and not cfg.text_cache:
        raise ValueError('text.encoder=cosmos_reason1 (7B) stays out of the training loop: '
                         'precompute the embeddings with python -m '
                         'dit4dit_train.embed_instructions --config THIS_RECIPE --dataset DATA '
                         '--cache-dir DIR, then set text_cache=DIR')
    dataset = LeRobotDataset(cfg.dataset, camera_keys=cfg.camera_keys,
                             frame_indices=tuple(model_cfg.video.frame_indices),
                             chunk_size=model_cfg.action.chunk_size, episodes=episodes)
    actions, states = dataset.actions_array(), dataset.states_array()
    views = len(cfg.camera_keys) if cfg.camera_keys else sum(
        1 for f in info['features'].values() if f.get('dtype') == 'video')
    model_cfg = model_cfg.with_overrides([
        f'action.real_action_dim={actions.shape[1]}', f'action.real_state_dim={states.shape[1]}',
        f'video.num_views={views}'])
    keys = cfg.state_keys or {'state': states.shape[1]}
    contract = dataset_contract(info, dataset.camera_keys, resize=cfg.resize)
    normalizer = Normalizer.from_data(
        actions, state_keys=list(keys.items()), action_dim=model_cfg.action.action_dim,
        state_dim=model_cfg.action.state_dim, action_names=list(contract.action_joints))
    return model_cfg, normalizer, dataset, contract


def _fsdp_keeps_losses_in_fp32(acc, cfg):
    """
    Under FSDP2 with bf16, compute in bf16 but reduce gradients and return outputs in fp32.

    accelerate's bf16 policy casts whatever the root module returns (our dict of losses) to bf16
    and reduces gradients in bf16; the reference recipe (ZeRO-2, bf16, fp32 master weights)
    keeps both in fp32.
    """
    plugin = getattr(acc.state, 'fsdp_plugin', None)
    if plugin is None or getattr(plugin, 'fsdp_version', 1) != 2 or cfg.mixed_precision != 'bf16':
        return
    from torch.distributed.fsdp import MixedPrecisionPolicy
    plugin.mixed_precision_policy = MixedPrecisionPolicy(
        param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=torch.float32)


def _latest_state(out: Path):
    states = sorted((out / 'state').glob('step_*')) if (out / 'state').is_dir() else []
    return states[-1] if states else None


def _trim_metrics(path: Path, step: int):
    """Drop metric lines written after ``step`` by a run that died before its next save."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines()
                 if ln.strip() and json.loads(ln).get('step', 0) <= step]
        path.write_text(''.join(ln + '\n' for ln in lines))


def train(cfg: TrainConfig, resume=False, progress=True) -> dict:
    """Run training; return a summary."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import set_seed
    from dit4dit_policy.bench import peak_memory_mb
    from dit4dit_policy.model import DiT4DiT, save_checkpoint
    from dit4dit_policy.model.text_encoder import InstructionCache, make_text_encoder
    from tqdm import tqdm

    acc = Accelerator(mixed_precision=cfg.mixed_precision, kwargs_handlers=[
        DistributedDataParallelKwargs(find_unused_parameters=True)])
    out = Path(cfg.output)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / 'train_config.json').write_text(cfg.dumps())
    model_cfg, normalizer, dataset, contract = build(cfg)
    set_seed(cfg.seed)                      # identical initial weights on every process
    if cfg.random_weights:
        from dit4dit_policy.model.random_weights import random_model
        model = random_model(model_cfg, seed=cfg.seed)
    else:
        model = DiT4DiT(model_cfg)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio))
    weights = (start_weights(dataset.episode_bounds(), len(dataset), cfg.start_weight)
               if cfg.start_weight > 0 else None)
    sampler = EpochSampler(len(dataset), cfg.seed, weights)
    # A private generator: creating a loader iterator then leaves the global RNG alone, so a
    # resumed run draws exactly the noise the uninterrupted run would have drawn.
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed),
        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
        collate_fn=Collate(normalizer, model_cfg.video.image_size, normalizer.action_mask(),
                           contract.resize))
    if len(loader) == 0:
        raise ValueError(f'{len(dataset)} frames are fewer than one batch of {cfg.batch_size}')
    _fsdp_keeps_losses_in_fp32(acc, cfg)
    model, optimizer, loader = acc.prepare(model, optimizer, loader)
    acc.register_for_checkpointing(scheduler)
    encoder = make_text_encoder(model_cfg.text)
    if cfg.text_cache:              # precomputed (embed_instructions): read, never encoded
        text_cache = InstructionCache(encoder, cfg.text_cache, offline=True)
    else:
        text_cache = InstructionCache(encoder, out / 'text_cache' if acc.is_main_process else '')

    swap = ColourSwap(cfg.colour_swap, cfg.seed) if cfg.colour_swap else None
    step = 0
    set_seed(cfg.seed + acc.process_index)          # per-process noise from here on
    if resume:
        state = _latest_state(out)
        if state is None:
            acc.print(f'[train] no saved state in {out / "state"}: starting from step 0')
        else:
            acc.load_state(str(state))      # weights, optimiser, schedule and the RNG states
            step = json.loads((state / 'trainer.json').read_text())['step']
            acc.print(f'[train] resumed from {state} at step {step}')
    metrics_path = out / 'metrics.jsonl'
    if acc.is_main_process:
        _trim_metrics(metrics_path, step)

    def save():
        acc.wait_for_everyone()
        # Every process takes part: a sharded model (FSDP, DeepSpeed ZeRO-3) gathers its full
        # weights onto the main process here; for DDP it is the model's own state dict.
        weights = acc.get_state_dict(model)
        final = out / 'state' / f'step_{step:08d}'
        tmp = out / 'state' / f'.tmp_step_{step:08d}'
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            (tmp / 'trainer.json').write_text(json.dumps({'step': step}) + '\n')
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in sorted((out / 'state').glob('step_*'))[:-cfg.keep_states]:
                shutil.rmtree(old, ignore_errors=True)
            save_checkpoint(out / 'checkpoint', acc.unwrap_model(model), normalizer, contract,
                            extra={'step': step, 'dataset': str(cfg.dataset),
                                   'preset': cfg.preset}, state_dict=weights)
        acc.wait_for_everyone()

    model.train()
    per_step = cfg.batch_size * acc.num_processes
    bar = tqdm(total=cfg.steps, initial=step, desc='train', unit='step',
               disable=not (progress and acc.is_main_process))
    t0, start_step, last = time.monotonic(), step, {}
    epoch_len = len(loader)
    stop = min(cfg.steps, step + cfg.stop_after) if cfg.stop_after else cfg.steps
    while step < stop:
        sampler.set_epoch(step // epoch_len)
        skip = step % epoch_len
        for batch in (acc.skip_first_batches(loader, skip) if skip else loader):
            clip, instructions = batch['clip'], batch['instructions']
            if swap is not None:
                clip, instructions = swap(clip, instructions, step, acc.process_index)
            text = text_cache.batch(instructions).to(acc.device)
            with acc.autocast():
                losses = model(clip, batch['state'], batch['actions'],
                               batch['action_mask'], text)
            acc.backward(losses['loss'])
            if acc.sync_gradients and cfg.grad_clip > 0:
                acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == stop:
                vals = {k: acc.reduce(v.detach().float().reshape(1), 'mean').item()
                        for k, v in losses.items()}
                elapsed = time.monotonic() - t0
                last = {'step': step, **vals,
                        'lr': {g.get('name', str(i)): g['lr']
                               for i, g in enumerate(optimizer.param_groups)},
                        'samples_per_s': (step - start_step) * per_step / max(elapsed, 1e-9)}
                if acc.is_main_process:
                    with open(metrics_path, 'a') as f:
                        f.write(json.dumps(last) + '\n')
                    bar.set_postfix(loss=f"{vals['loss']:.4f}")
            if step % cfg.save_every == 0 or step == stop:
                save()
            if step >= stop:
                break
    bar.close()
    elapsed = time.monotonic() - t0
    summary = {'steps': step, 'trained_steps': step - start_step, 'elapsed_s': elapsed,
               'samples_per_s': (step - start_step) * per_step / max(elapsed, 1e-9),
               'processes': acc.num_processes, 'checkpoint': str(out / 'checkpoint'),
               'peak_memory_mb': peak_memory_mb(acc.device), 'last': last}
    acc.end_training()
    return summary


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_train train``)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--config', default='', help='training YAML/JSON (TrainConfig keys)')
    parser.add_argument('--dataset', default='', help='LeRobot v3 dataset directory')
    parser.add_argument('--output', default='', help='run directory')
    parser.add_argument('--resume', action='store_true', help='continue from the newest state')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('overrides', nargs='*', help='key=value, e.g. steps=200 batch_size=4 '
                        "model='[\"video.tap_block=1\"]'")
    args = parser.parse_args(argv)
    extra = [f'dataset={args.dataset}'] * bool(args.dataset) + \
        [f'output={args.output}'] * bool(args.output)
    cfg = TrainConfig.load(args.config or None, list(args.overrides) + extra)
    if not cfg.dataset or not cfg.output:
        parser.error('--dataset and --output are required (or set them in --config)')
    summary = train(cfg, resume=args.resume, progress=not args.no_progress)
    if int(os.environ.get('RANK', '0')) == 0:
        loss = summary['last'].get('loss', float('nan'))
        print(f"[train] {summary['trained_steps']} steps (to step {summary['steps']}) on "
              f"{summary['processes']} process(es) in {summary['elapsed_s']:.1f} s, "
              f"{summary['samples_per_s']:.3g} samples/s, last loss {loss:.4f}, peak memory "
              f"{summary['peak_memory_mb']:.0f} MB per process; "
              f"checkpoint: {summary['checkpoint']}", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
