"""
LIBERO's benchmark protocol through the policy graph: per task, its official initial states.

``python -m dit4dit_bringup.evaluate_closed_loop --env libero --suite libero_spatial ...`` runs
this. For each task of the suite (or ``--tasks``), ``dit4dit_bringup.graph.libero_graph`` runs
trials 0..N-1 on the task's official initial states: ``sim_bridge`` in lockstep at LIBERO's 20 Hz
(the objects settle for ``WAIT_STEPS`` first, the suite's step limit applies after), the policy
queried every ``actions_per_query`` steps, each chunk open loop through ``lockstep_executor``.

Every finished trial is appended to ``<output>/episodes.jsonl`` as it ends
(``dit4dit_sim.libero_protocol.ResultsStore``): a run stopped by Ctrl-C, a kill or a crash
continues with the trials it has not run when started again with the same output. At the end
(and after an interruption, with what there is) it writes ``results.json`` (the trials, the
per-task / per-suite table, the settings), ``table.md`` (the paper's layout), ``success.png`` and
the first trial of each task as ``videos/<suite>_<task>_trial<k>.mp4`` (agent view).
"""

import json
from pathlib import Path
import time
import typing


def run_benchmark(checkpoint: str, suite: str, output, tasks: typing.Optional[list] = None,
                  trials_per_task: int = 50, device: str = 'cpu', videos: str = 'first',
                  actions_per_query: typing.Optional[int] = None, time_limit_s: float = 0.0,
                  timeout_s: float = 0.0) -> dict:
    """Run the plan's remaining trials; write and return the results (module docstring)."""
    from dit4dit_common.runner import StopRequest
    from dit4dit_sim.envs.libero import all_tasks
    from dit4dit_sim.libero_protocol import plan, ResultsStore

    from .closed_loop import VIDEO_CHOICES
    from .graph import LIBERO_ACTIONS_PER_QUERY, libero_graph, LiberoArguments

    if videos not in VIDEO_CHOICES:
        raise ValueError(f'videos {videos!r}: valid are {", ".join(VIDEO_CHOICES)}')
    output = Path(output)
    trials = plan(suite, tasks, trials_per_task)
    store = ResultsStore(output / 'episodes.jsonl')
    todo = store.remaining(trials)
    per_query = actions_per_query or LIBERO_ACTIONS_PER_QUERY
    # Validate every graph before the first trial runs (a checkpoint that does not fit LIBERO).
    runs = [LiberoArguments(checkpoint=checkpoint, task=f'{suite}/{task}', episodes=len(run),
                            first_index=run[0], device=device, actions_per_query=per_query,
                            time_limit_s=time_limit_s)
            for task, run in _contiguous_runs(todo)]
    graphs = [libero_graph(args) for args in runs]
    print(f'[libero] {suite}: {len(trials)} trials planned ({len(trials) - len(todo)} already in '
          f'{store.path}), {len(todo)} to run', flush=True)
    start = time.monotonic()
    with StopRequest('libero') as stop:      # a signal between two tasks' graphs stops too
        interrupted = _run(runs, graphs, suite, trials, store, output, videos, timeout_s, stop)
    result = write_results(store, trials, output, {
        'checkpoint': checkpoint, 'suite': suite, 'device': device,
        'actions_per_query': per_query, 'time_limit_s': time_limit_s or None,
        'wall_s': round(time.monotonic() - start, 1), 'interrupted': interrupted},
        names={t.name: t.language for t in all_tasks().values()})
    return result


def _run(runs, graphs, suite, trials, store, output, videos, timeout_s, stop) -> bool:
    """Run each task's graph in turn; return whether a stop signal cut the plan short."""
    from dit4dit_sim.libero_protocol import Trial

    from .closed_loop import run_episodes

    for args, specs in zip(runs, graphs):
        if stop:
            return True
        task = int(args.task.split('/')[1])

        def record(row, task=task):
            trial = Trial(suite, task, int(row['initial_state']))
            store.record(trial, row['success'], duration_s=row.get('duration_s'),
                         outcome=row['outcome'], message=row.get('message', ''),
                         chunks=row['chunks'], steps=row['steps'], commands=row['commands'],
                         lockstep_timeouts=row['lockstep_timeouts'],
                         instruction=row['instruction'], video=row.get('video', ''))
            done = sum(1 for r in store.rows if Trial(r['suite'], r['task'], r['trial'])
                       in trials)
            print(f'[libero] {done}/{len(trials)} {trial.task_id} trial {trial.trial}: '
                  f'{row["outcome"]}', flush=True)

        def film(row, task=task):
            return output / 'videos' / f'{suite}_{task}_trial{row["initial_state"]}.mp4'

        _, interrupted = run_episodes(specs, args.episodes, videos, timeout_s,
                                      on_finished=record, video_path=film)
        if interrupted:
            return True
    return bool(stop)


def _contiguous_runs(trials) -> typing.List[typing.Tuple[int, typing.List[int]]]:
    """Group trials into (task, consecutive initial states): one graph runs each group."""
    runs = []
    for trial in trials:
        if runs and runs[-1][0] == trial.task and runs[-1][1][-1] + 1 == trial.trial:
            runs[-1][1].append(trial.trial)
        else:
            runs.append((trial.task, [trial.trial]))
    return runs


def write_results(store, trials, output: Path, settings: dict, names=None) -> dict:
    """Write results.json, table.md and success.png for the planned trials recorded so far."""
    from dit4dit_sim.libero_protocol import markdown_table, table, Trial

    planned = set(trials)
    rows = [r for r in store.rows if Trial(r['suite'], r['task'], r['trial']) in planned]
    summary = table(rows)
    result = {**settings, 'planned_trials': len(trials), 'trials': len(rows),
              'successes': sum(bool(r['success']) for r in rows), 'summary': summary,
              'rows': rows}
    output.mkdir(parents=True, exist_ok=True)
    (output / 'results.json').write_text(json.dumps(result, indent=2))
    (output / 'table.md').write_text(markdown_table(summary, names))
    _plot(summary, output / 'success.png')
    return result


def _plot(summary: dict, path: Path):
    """Write one bar per task: its success rate, with the trials in the label."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    cells = [(f'{suite.replace("libero_", "")}/{task}\n(n={c["trials"]})', c['success_rate'])
             for suite, tasks in summary['tasks'].items() for task, c in tasks.items()]
    fig, ax = plt.subplots(figsize=(max(4, 0.7 * len(cells) + 2), 3))
    ax.bar(range(len(cells)), [100 * rate for _, rate in cells], color='tab:green')
    ax.set_xticks(range(len(cells)), [label for label, _ in cells], fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel('success %')
    average = summary['average']
    ax.set_title('LIBERO success per task' +
                 ('' if average is None else f' (average of suites {100 * average:.1f} %)'))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
