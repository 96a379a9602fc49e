"""
The LIBERO benchmark harness with a learned checkpoint, as a user runs it: a process, its output.

``evaluate_closed_loop --env libero`` with the committed tiny LIBERO policy on official initial
states of libero_spatial task 0, shortened by ``--time-limit-s`` (the protocol otherwise): the
policy is queried every 8 control steps and each of its commands answers one step (lockstep,
open loop). Stopped by a signal it keeps the trials that ended, writes its results and exits
non-zero; started again on the same output it runs only the trials it has not.
"""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[3]
CHECKPOINT = ROOT / 'demo' / 'libero_spatial_tiny'
PATTERNS = {'one SIGINT': (signal.SIGINT,), 'two SIGINTs': (signal.SIGINT, signal.SIGINT),
            'SIGTERM': (signal.SIGTERM,)}


def _command(out, trials, limit_s):
    return [sys.executable, '-m', 'dit4dit_bringup.evaluate_closed_loop', '--env', 'libero',
            '--checkpoint', str(CHECKPOINT), '--output', str(out), '--suite', 'libero_spatial',
            '--tasks', '0', '--trials-per-task', str(trials), '--time-limit-s', str(limit_s)]


def _env():
    return {**os.environ, 'MUJOCO_GL': os.environ.get('MUJOCO_GL', 'egl')}


def test_a_learned_checkpoint_runs_a_libero_trial_through_the_harness(tmp_path):
    out = tmp_path / 'libero'
    res = subprocess.run(_command(out, 1, 2.0), capture_output=True, text=True, timeout=300,
                         env=_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'libero: libero_spatial ' in res.stdout and '1 planned' in res.stdout
    result = json.loads((out / 'results.json').read_text())
    assert result['trials'] == result['planned_trials'] == 1 and not result['interrupted']
    (row,) = result['rows']
    assert (row['suite'], row['task'], row['trial']) == ('libero_spatial', 0, 0)
    assert row['instruction'].startswith('pick up the black bowl between the plate')
    # one command per 20 Hz step, a query every 8 of them, open loop in between; the simulator
    # counted its steps, each answered by a command (lockstep), none on a timeout
    steps = round(row['duration_s'] / 0.05)
    assert row['outcome'] == 'success' or steps == 40, row
    assert row['steps'] == row['commands'] == steps and row['lockstep_timeouts'] == 0, row
    assert row['chunks'] == -(-steps // 8), row
    table = (out / 'table.md').read_text()
    assert '| 0: pick up the black bowl between the plate and the ramekin' in table
    assert '| Spatial | Avg |' in table
    assert (out / 'success.png').stat().st_size > 0
    with av.open(row['video']) as video:                   # agent view, the whole trial
        frames = [f.to_ndarray(format='rgb24').astype(int) for f in video.decode(video=0)]
    assert steps <= len(frames) <= steps + 2
    # a picture, not the noise a GL context current in another thread draws: neighbours agree
    assert max(np.abs(np.diff(f, axis=1)).mean() for f in frames) < 20


@pytest.mark.parametrize('pattern', PATTERNS.values(), ids=PATTERNS.keys())
def test_a_signal_keeps_the_finished_trials_and_a_rerun_continues(tmp_path, pattern):
    out = tmp_path / 'libero'
    proc = subprocess.Popen(_command(out, 2, 1.0), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        jsonl = out / 'episodes.jsonl'
        deadline = time.monotonic() + 240
        while not (jsonl.is_file() and jsonl.read_text().count('\n') >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        for i, sig in enumerate(pattern):
            if i:
                time.sleep(0.3)
            proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout[-2000:] + stderr[-2000:]
    assert 'Traceback' not in stderr, stderr[-3000:]
    result = json.loads((out / 'results.json').read_text())
    assert result['interrupted'] and result['trials'] == 1 and result['planned_trials'] == 2
    assert [r['trial'] for r in result['rows']] == [0]
    if pattern != (signal.SIGINT,):
        return
    res = subprocess.run(_command(out, 2, 1.0), capture_output=True, text=True, timeout=300,
                         env=_env())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert '2 trials planned (1 already in' in res.stdout and '1 to run' in res.stdout
    result = json.loads((out / 'results.json').read_text())
    assert [r['trial'] for r in result['rows']] == [0, 1] and not result['interrupted']
