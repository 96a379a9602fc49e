"""A short closed-loop episode through the ROS graph: sim_bridge -> policy -> executor -> sim."""

import json
import os

os.environ.setdefault('MUJOCO_GL', 'egl')

import av  # noqa: E402
from dit4dit_bringup.closed_loop import evaluate  # noqa: E402
from dit4dit_bringup.evaluate_closed_loop import main as cli  # noqa: E402
from dit4dit_bringup.graph import SimArguments  # noqa: E402
from dit4dit_policy.testing import make_tiny_checkpoint  # noqa: E402
from dit4dit_sim.envs.g1_tabletop import ARM_JOINTS  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.dds


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp('ckpt') / 'c', list(ARM_JOINTS),
                                chunk_size=16, fps=15, cameras=[('head', 64, 64)])


def test_one_held_out_episode_runs_closed_loop_and_is_reported(checkpoint, tmp_path):
    result = evaluate(SimArguments(checkpoint=str(checkpoint), episodes=1),
                      tmp_path / 'eval', videos='first', timeout_s=240)
    assert result['episodes'] == 1, result
    (row,) = result['rows']
    assert row['instruction'].startswith('reach the ') and row['initial_state'] == 0
    assert row['outcome'] in ('success', 'failure') and row['duration_s'] > 0
    saved = json.loads((tmp_path / 'eval' / 'results.json').read_text())
    assert saved['success_rate'] == result['success_rate']
    assert (tmp_path / 'eval' / 'success.png').stat().st_size > 0
    with av.open(row['video']) as video:
        frames = sum(1 for _ in video.decode(video=0))
    # The camera runs at 15 Hz of simulated time for the whole episode.
    assert frames == pytest.approx(15 * row['duration_s'], rel=0.3)


def test_the_cli_refuses_bad_arguments_and_misfit_checkpoints(checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli(['--checkpoint', str(checkpoint), '--output', str(tmp_path), '--strategy', 'blend'])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid choice: 'blend'" in err and 'crossfade' in err
    misfit = make_tiny_checkpoint(tmp_path / 'm', ['tail_joint'])
    assert cli(['--checkpoint', str(misfit), '--output', str(tmp_path / 'e')]) == 2
    assert 'does not let a policy command: tail_joint' in capsys.readouterr().err
