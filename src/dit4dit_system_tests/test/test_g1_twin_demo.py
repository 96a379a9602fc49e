"""
``make demo-g1``'s command, one held-out episode, in its own module.

Its graph must not share the DDS domain or the two cores with ``test_g1_twin``'s module-wide
graph, which is torn down when that module ends.
"""

import json
import os
from pathlib import Path
import subprocess
import sys

from dit4dit_g1.description import load_description
import pytest

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / 'demo' / 'g1_tabletop_reach_tiny'
G1 = load_description()


def test_make_demo_g1_runs_an_episode_through_the_real_graph_and_the_twin(tmp_path):
    """The command behind ``make demo-g1``, one held-out episode: outcome, 0 rejected, ramps."""
    out = tmp_path / 'g1'
    res = subprocess.run([sys.executable, '-m', 'dit4dit_bringup.evaluate_g1', '--checkpoint',
                          str(DEMO), '--output', str(out), '--episodes', '1', '--first-index',
                          '1', '--videos', 'first'],
                         capture_output=True, text=True, timeout=240, env=os.environ.copy())
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "[1/1] 'reach the red cube' (held-out state 1)" in res.stdout
    result = json.loads((out / 'results.json').read_text())
    # what a failure in CI must show, whose log keeps only a few lines of it
    seen = {k: result[k] for k in ('episodes', 'lowcmd_rejected', 'twin_counters', 'error',
                                   'stopped', 'twin_real_time_factor')}
    seen['rows'] = [(r['outcome'], r['duration_s']) for r in result['rows']]
    assert result['episodes'] == 1 and result['lowcmd_rejected'] == 0, seen
    assert result['twin_counters']['accepted_arm_sdk'] >= 200, seen
    assert result['twin_counters']['accepted_hand_left'] >= 200, seen
    ramps = [(r['direction'], r['duration_s']) for r in result['weight_ramps']]
    assert [d for d, _ in ramps] == ['up', 'down'], (ramps, seen)
    # The bridge moves the weight by at most period / ramp_s per LowCmd: a timer starved by a busy
    # machine makes a ramp longer, never shorter (0.3 s: when the operator received the first).
    for (_, took), nominal in zip(ramps, (G1.ramp_up_s, G1.ramp_down_s)):
        assert nominal - 0.3 <= took <= 2 * nominal + 1.0, (
            ramps, result['twin_real_time_factor'])
    assert Path(result['rows'][0]['video']).stat().st_size > 1000
    assert (out / 'arm_sdk_weight.png').exists()
    assert (out / 'logs' / 'g1_twin.log').exists()
