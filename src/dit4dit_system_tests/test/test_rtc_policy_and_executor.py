"""
Real-time chunking across packages, without ROS.

The policy's inpainting (dit4dit_policy) feeding the executor's ``rtc`` strategy
(dit4dit_control).
"""

from dit4dit_policy.runtime.inpainting import PrefixPlanner
import numpy as np


def _ns(seconds):
    """Return a stamp in integer nanoseconds, as the planner takes them."""
    return int(round(seconds * 1e9))


def _run_closed_loop(runner, inpaint: bool, latency=0.3, period=5 / 30, queries=6):
    """
    Query the policy every ``period``; each chunk reaches an rtc executor ``latency`` later.

    The period is a whole number of action periods so that the guide samples the previous chunk
    at its own actions: an untrained policy's chunks zigzag, and sampling one between its
    actions would cut the corners (a trained policy's smooth chunks do not care).
    """
    from dit4dit_policy.inference import Observation
    from dit4dit_control.chunk_executor import Chunk, ChunkExecutor, ExecutorConfig

    dt = 1.0 / 30.0
    planner = PrefixPlanner(runner.config.action.chunk_size)
    executor = ChunkExecutor(4, ExecutorConfig(strategy='rtc'))
    image = np.full((32, 32, 3), 100, np.uint8)
    arrivals = []
    for i in range(queries):
        stamp = 1.0 + i * period
        guide = planner.guide(_ns(stamp)) if inpaint else None
        obs = Observation([image], np.zeros(4), 'reach the red cube')
        actions = runner.predict(obs, seed=100 + i, guide=guide).actions   # a new plan each time
        planner.remember(_ns(stamp), dt, actions, latency)
        arrivals.append((stamp + latency, Chunk(stamp=stamp, dt=dt, positions=actions)))
    # At each switch, how far does the executed motion leave the plan it was following during
    # the switch (the rtc strategy blends over one action period)? Within a plan an untrained
    # policy moves a lot, so the plan itself, not the per-tick step, is the reference.
    departures, followed = [], None
    for arrival, chunk in arrivals:
        executor.submit(chunk, arrival)
        if followed is not None:
            last = followed.time_of(followed.horizon - 1)    # not the extrapolated period
            times = [t for t in arrival + np.linspace(0.0, dt, 50) if t <= last]
            assert len(times) > 10
            departures.append(max(float(np.abs(executor.target(t) - followed.sample(t)).max())
                                  for t in times))
        followed = chunk
    return max(departures)


def test_inpainted_chunks_join_the_executed_motion_without_a_jump(tmp_path):
    """
    Start each new plan on the one being executed.

    An untrained policy proposes a different plan every query: without inpainting the executor
    must leave one plan for the other at each switch; inpainted, the new plan starts on the old.
    """
    from dit4dit_policy.inference import PolicyRunner
    from dit4dit_policy.testing import make_tiny_checkpoint

    path = make_tiny_checkpoint(tmp_path / 'c', [f'j{i}' for i in range(4)], chunk_size=16,
                                fps=30)
    runner = PolicyRunner.from_checkpoint(path)
    free = _run_closed_loop(runner, inpaint=False)
    inpainted = _run_closed_loop(runner, inpaint=True)
    print(f'largest departure from the followed plan after a switch: free {free:.4f}, '
          f'inpainted {inpainted:.4f}')
    assert free > 0.2 and inpainted < 0.05 * free
