"""Training: the loss falls on a converted dataset; resume is exact; two processes work (gloo)."""

import json
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time

from dit4dit_train.bag_types import make_typestore
from dit4dit_train.convert import convert
from dit4dit_train.dataset import LeRobotDataset
from dit4dit_train.evaluate import main as evaluate_main
from dit4dit_train.feature_map import FeatureMap
from dit4dit_train.synthetic_bags import write_bag
from dit4dit_train.train import main as train_main
from dit4dit_train.training import (ColourSwap, EpochSampler, start_weights, TrainConfig,
                                    TrainConfigError)
import numpy as np
import pytest
import torch

MODEL = ['video.image_size=[32, 32]', 'video.frame_indices=[0, 1, 2, 3, 4]',
         'video.num_layers=2', 'video.tap_block=0', 'action.num_layers=2', 'action.chunk_size=8',
         'objective.action_repeats=2', 'text.max_tokens=16']
COMMON = [f'model={json.dumps(MODEL)}', 'batch_size=4', 'log_every=1', 'warmup_steps=2',
          'lr_video=1e-3', 'lr_action=1e-3']


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp('train')
    store = make_typestore(require=('dit4dit_msgs',))
    write_bag(root / 'bag', store, seconds=3.0,
              episodes=(('reach the red cube', 1), ('reach the blue cube', 1)))
    fmap = FeatureMap.from_dict({
        'fps': 15, 'reference': 'head',
        'cameras': {'head': {'topic': '/camera/image_raw', 'resize': [32, 32]}},
        'state': {'topic': '/joint_states', 'joints': ['j0', 'j1', 'j2']},
        'action': {'source': 'command', 'topic': '/dit4dit/joint_command'}})
    convert([root / 'bag'], fmap, root / 'data', progress=False)
    return root / 'data'


def _metrics(run):
    return [json.loads(ln) for ln in (Path(run) / 'metrics.jsonl').read_text().splitlines()]


@pytest.fixture(scope='module')
def trained_run(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp('loss') / 'run'
    assert train_main(['--dataset', str(dataset), '--output', str(run), '--no-progress',
                       'steps=60', 'save_every=60', 'val_episodes=[1]', *COMMON, 'batch_size=8',
                       'lr_video=2e-3', 'lr_action=2e-3', 'min_lr_ratio=0.5']) == 0
    return run


def test_loss_falls_on_a_small_converted_dataset(trained_run):
    metrics = _metrics(trained_run)
    assert [m['step'] for m in metrics] == list(range(1, 61))
    for key in ('loss', 'action_loss', 'video_loss'):
        first = sum(m[key] for m in metrics[:5]) / 5
        last = sum(m[key] for m in metrics[-10:]) / 10
        assert last < 0.8 * first, (key, first, last)
    assert (trained_run / 'checkpoint' / 'manifest.json').is_file()
    assert sorted(p.name for p in (trained_run / 'state').iterdir()) == ['step_00000060']


def test_offline_evaluation_on_held_out_episodes(trained_run, dataset, tmp_path, capsys):
    out = tmp_path / 'eval'
    assert evaluate_main(['--checkpoint', str(trained_run / 'checkpoint'), '--dataset',
                          str(dataset), '--episodes', '1', '--output', str(out),
                          '--no-progress']) == 0
    metrics = json.loads((out / 'metrics.json').read_text())
    frames = LeRobotDataset(dataset, frame_indices=(0,), chunk_size=1, episodes=[1]).__len__()
    assert metrics['frames'] == frames and set(metrics['per_joint_mae']) == {'j0', 'j1', 'j2'}
    assert 0 < metrics['mse'] < 10
    png = out / 'episode_000001.png'
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 5000
    assert '[evaluate] 1 episodes' in capsys.readouterr().out


def test_start_weighted_sampling_favours_episode_starts_and_is_reproducible():
    bounds = {0: (0, 20), 3: (20, 30)}
    weights = start_weights(bounds, 30, 5.0)
    assert weights[0] == pytest.approx(6.0) and weights[20] == pytest.approx(6.0)
    assert weights[19] == pytest.approx(1.0, abs=1e-2) and weights[3] < weights[2]
    sampler = EpochSampler(30, seed=7, weights=weights)
    sampler.set_epoch(2)
    first = list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) == first and len(first) == 30      # an epoch is (seed, epoch) alone
    draws = []
    for epoch in range(200):
        sampler.set_epoch(epoch)
        draws += list(sampler)
    counts = np.bincount(draws, minlength=30) / len(draws)
    assert counts[0] > 3 * counts[15] and counts[20] > 3 * counts[29]
    assert counts[0] == pytest.approx(weights[0] / weights.sum(), rel=0.15)
    plain = EpochSampler(30, seed=7)
    assert sorted(plain) == list(range(30))                  # unweighted: a permutation
    with pytest.raises(ValueError, match='non-negative'):
        EpochSampler(3, seed=0, weights=[1.0, -1.0, 1.0])
    with pytest.raises(TrainConfigError, match='start_weight'):
        TrainConfig(start_weight=-1)


def test_colour_swap_moves_each_colour_with_its_name_and_repeats_per_step():
    swap = ColourSwap({'red': 0, 'green': 1, 'blue': 2}, seed=3)
    clip = -torch.ones(24, 3, 2, 4, 4)
    clip[:, 0, :, :2] = 1.0                  # a red object on the left half of every frame
    texts = ['Red cube, then the blue one'] * 24
    out, renamed = swap(clip, texts, step=11)
    seen = set()
    for frames, text in zip(out, renamed):
        lit = [c for c in range(3) if frames[c, :, :2].mean() > 0]
        assert len(lit) == 1 and (frames[:, :, 2:] == -1).all()     # the object moved channel
        word = ('red', 'green', 'blue')[lit[0]]
        assert text.startswith(word.capitalize() + ' cube, then the ')   # ... and its name
        seen.add(text)
    assert len(seen) == 6                    # every permutation occurs over 24 draws
    again, renamed_again = swap(clip, texts, step=11)
    assert torch.equal(again, out) and renamed_again == renamed        # (seed, step) alone
    assert swap(clip, texts, step=12)[1] != renamed
    assert swap(clip[:1], ['reach the yellow cube'], step=0)[1] == ['reach the yellow cube']
    with pytest.raises(TrainConfigError, match='colour_swap'):
        TrainConfig(colour_swap={'red': 0, 'green': 0})


def test_plus_equals_appends_to_a_recipe_s_model_overrides(tmp_path):
    recipe = tmp_path / 'recipe.yaml'
    recipe.write_text('preset: tiny\nmodel:\n  - action.chunk_size=16\nsteps: 5\n')
    cfg = TrainConfig.load(recipe, ['model+=objective.video_loss=false', 'steps=7'])
    assert cfg.model == ['action.chunk_size=16', 'objective.video_loss=false'] and cfg.steps == 7
    assert TrainConfig.load(None, ['model+=[a=1, b=2]']).model == ['a=1', 'b=2']
    with pytest.raises(TrainConfigError, match='steps is not a list key'):
        TrainConfig.load(recipe, ['steps+=3'])


def _train_cmd(dataset, run, *extra):
    return [sys.executable, '-m', 'dit4dit_train.train', '--dataset', str(dataset), '--output',
            str(run), '--no-progress', 'steps=100', 'save_every=3', 'start_weight=4',
            'colour_swap={red: 0, green: 1, blue: 2}', *COMMON, *extra]


def test_string_keys_keep_their_text_where_yaml_would_read_a_boolean():
    # mixed_precision=no is the string 'no' (YAML 1.1 reads a bare no as false)
    assert TrainConfig.load(None, ['mixed_precision=no']).mixed_precision == 'no'
    assert TrainConfig.load(None, ['resize=bilinear_antialias']).resize == 'bilinear_antialias'
    with pytest.raises(TrainConfigError, match="resize 'area': valid are bilinear"):
        TrainConfig.load(None, ['resize=area'])


def test_a_killed_run_resumes_at_its_last_state_exactly(dataset, tmp_path):
    ref = tmp_path / 'reference'
    subprocess.run(_train_cmd(dataset, ref, 'stop_after=9'), check=True, capture_output=True,
                   timeout=600)
    expected = {m['step']: m['loss'] for m in _metrics(ref)}

    run = tmp_path / 'killed'
    proc = subprocess.Popen(_train_cmd(dataset, run), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (run / 'state' / 'step_00000003').is_dir():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, 'no state saved within 300 s'
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    saved = sorted(p.name for p in (run / 'state').glob('step_*'))
    resumed_from = int(saved[-1].split('_')[1])
    res = subprocess.run(_train_cmd(dataset, run, 'stop_after=3', '--resume'), check=True,
                         capture_output=True, text=True, timeout=600)
    assert 'resumed from' in res.stdout + res.stderr and f'at step {resumed_from}' in (
        res.stdout + res.stderr)
    after = {m['step']: m['loss'] for m in _metrics(run)}
    steps = range(resumed_from + 1, resumed_from + 4)
    assert max(after) == resumed_from + 3
    for s in steps:
        assert after[s] == pytest.approx(expected[s], rel=1e-5, abs=1e-7), s


def test_two_process_cpu_training_with_accelerate_launch(dataset, tmp_path):
    run = tmp_path / 'ddp'
    # accelerate's multi-process CPU mode (torch.distributed with gloo): torchrun-style launch
    # with ACCELERATE_USE_CPU, as the README documents for machines without GPUs.
    env = dict(os.environ, OMP_NUM_THREADS='1', ACCELERATE_USE_CPU='true')
    with socket.socket() as sock:          # a free port: parallel test runs must not collide
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes',
           '2', '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no',
           '--main_process_ip', '127.0.0.1', '--main_process_port', str(port),
           '-m', 'dit4dit_train.train', '--dataset', str(dataset), '--output', str(run),
           '--no-progress', 'steps=4', 'save_every=4', *COMMON]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'on 2 process(es)' in res.stdout
    from dit4dit_policy.model import load_checkpoint
    _, _, manifest, contract = load_checkpoint(run / 'checkpoint')
    assert manifest['extra']['step'] == 4
    info = json.loads((dataset / 'meta' / 'info.json').read_text())
    assert contract.fps == info['fps']
    assert list(contract.state_joints) == info['features']['observation.state']['names']


def test_embeddings_precomputed_offline_are_all_training_reads(dataset, tmp_path, capsys):
    from dit4dit_policy.model.text_encoder import InstructionCache, make_text_encoder
    from dit4dit_policy.model import preset
    from dit4dit_train.embed_instructions import dataset_instructions, main as embed_main

    assert dataset_instructions(dataset) == ['reach the red cube', 'reach the blue cube']
    cache = tmp_path / 'emb'
    swap = 'colour_swap={red: 0, green: 1, blue: 2}'
    assert embed_main(['--dataset', str(dataset), '--cache-dir', str(cache), *COMMON, swap]) == 0
    out = capsys.readouterr().out
    # each instruction under every renaming colour_swap can draw: red, green and blue cubes
    assert '[embed] 3 instructions: 3 encoded, 0 already cached' in out
    assert len(list(cache.glob('*.safetensors'))) == 3
    assert embed_main(['--dataset', str(dataset), '--cache-dir', str(cache), *COMMON, swap,
                       '--instruction', 'wave']) == 0
    assert '4 instructions: 1 encoded, 3 already cached' in capsys.readouterr().out

    run = tmp_path / 'run'
    assert train_main(['--dataset', str(dataset), '--output', str(run), '--no-progress',
                       'steps=2', 'save_every=2', f'text_cache={cache}', swap, *COMMON]) == 0
    assert not (run / 'text_cache').exists()            # read from EMB, nothing encoded
    text_cfg = preset('tiny', json.loads(COMMON[0].partition('=')[2])).text
    assert InstructionCache(make_text_encoder(text_cfg), cache, offline=True).get(
        'reach the green cube').shape == (text_cfg.max_tokens, text_cfg.embed_dim)

    with pytest.raises(ValueError, match='stays out of the training loop'):
        train_main(['--dataset', str(dataset), '--output', str(tmp_path / 'big'), '--no-progress',
                    'preset=cosmos-predict2.5-2b', 'steps=1'])


def _free_port():
    with socket.socket() as sock:          # parallel test runs must not collide
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_sharded_fsdp2_training_on_two_cpu_processes(dataset, tmp_path):
    # The 2B recipe's accelerate config (FSDP2, bf16, activation checkpointing) on the tiny
    # model: parameters sharded across two gloo processes, a sharded state saved and resumed
    # bit-exactly, the exported checkpoint gathered on rank 0 equal to the sharded weights.
    # accelerate never enables FSDP for CPU processes; fsdp_cpu_shim.py switches it on.
    from dit4dit_policy.model import load_checkpoint
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    config = Path(__file__).resolve().parents[1] / 'config' / 'accelerate' / 'fsdp2_bf16.yaml'
    shim = Path(__file__).resolve().parent / 'fsdp_cpu_shim.py'
    env = dict(os.environ, OMP_NUM_THREADS='1', ACCELERATE_USE_CPU='true')

    def launch(run, *extra):
        cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--config_file', str(config),
               '--num_processes', '2', '--main_process_ip', '127.0.0.1',
               '--main_process_port', str(_free_port()), str(shim), '--dataset', str(dataset),
               '--output', str(run), '--no-progress', *extra, 'steps=4', 'save_every=2',
               'mixed_precision=bf16', *COMMON]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        return res.stdout

    out = launch(tmp_path / 'run', 'stop_after=2')
    shards = [ln for ln in out.splitlines() if ln.startswith('[shard]')]
    assert len(shards) == 2, out[-2000:]
    for line in shards:
        words = line.split()
        local, total = int(words[5]), int(words[7])
        assert abs(2 * local - total) < 0.01 * total, line           # each holds half
        assert '4 checkpointed blocks' in line, line                  # 2 video + 2 action
        assert 'torch.bfloat16/torch.float32/torch.float32' in line, line
    state = tmp_path / 'run' / 'state' / 'step_00000002' / 'pytorch_model_fsdp_0'
    assert len(list(state.glob('*.distcp'))) == 2
    resumed = launch(tmp_path / 'run', '--resume')
    assert 'resumed from' in resumed and 'at step 2' in resumed
    launch(tmp_path / 'straight')
    run, straight = _metrics(tmp_path / 'run'), _metrics(tmp_path / 'straight')
    assert [m['step'] for m in run] == [m['step'] for m in straight] == [1, 2, 3, 4]
    for a, b in zip(run, straight):
        for key in ('loss', 'action_loss', 'video_loss'):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (a['step'], key)

    dcp_to_torch_save(tmp_path / 'run' / 'state' / 'step_00000004' / 'pytorch_model_fsdp_0',
                      tmp_path / 'full.pt')
    sharded = torch.load(tmp_path / 'full.pt')['model']
    exported = load_file(tmp_path / 'run' / 'checkpoint' / 'model.safetensors')
    assert exported and set(exported) <= set(sharded)
    for key, value in exported.items():
        assert torch.equal(value, sharded[key].to(value.dtype)), key
    _, _, manifest, _ = load_checkpoint(tmp_path / 'run' / 'checkpoint')
    assert manifest['extra']['step'] == 4


def test_instruction_check_end_to_end(trained_run, dataset, tmp_path, capsys):
    from dit4dit_train.evaluate_instruction import main as instruction_main
    ckpt = str(trained_run / 'checkpoint')
    # The two synthetic episodes start on different frames: no scene, a clear refusal.
    with pytest.raises(SystemExit) as exc:
        instruction_main(['--checkpoint', ckpt, '--dataset', str(dataset), '--no-progress'])
    assert exc.value.code == 2 and 'every_target' in capsys.readouterr().err
    # Taken as one scene, each instruction's chunk is scored against both demonstrations.
    out = tmp_path / 'instruction.json'
    assert instruction_main(['--checkpoint', ckpt, '--dataset', str(dataset), '--tolerance',
                             '255', '--output', str(out), '--no-progress']) == 0
    result = json.loads(out.read_text())
    assert (result['scenes'], result['choices'], result['chance']) == (1, 2, 0.5)
    assert result['accuracy'] in (0.0, 0.5, 1.0) and result['spread'] >= 0
    assert result['per_scene'][0]['episodes'] == [0, 1]
    assert '[evaluate_instruction] 1 scenes, 2 choices' in capsys.readouterr().out
