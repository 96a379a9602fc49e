"""
LIBERO's evaluation protocol, ROS-free: which episodes to run, how long, and the paper's table.

Per suite (libero_spatial, libero_object, libero_goal, libero_10): every task (10), trials 0..N-1
on the task's official initial states (N = 50 in the benchmark), at most the suite's published
number of 20 Hz control steps (220 / 280 / 300 / 520) after ``WAIT_STEPS`` steps that let the
objects settle (the action held still, as LIBERO's evaluation clients do). A trial's outcome is
success (the BDDL goal held) or failure (time limit).

``ResultsStore`` appends one JSON line per finished trial, so an interrupted evaluation continues
with the trials it has not run; ``table`` and ``markdown_table`` report success per task, per
suite and the average over suites, as the paper's LIBERO table does.
"""

from dataclasses import asdict, dataclass
import json
from pathlib import Path
import typing

from .envs.libero import SUITES, WAIT_STEPS  # noqa: F401  (the protocol's, re-exported)

TRIALS_PER_TASK = 50            # the benchmark's trials per task (= official initial states)
TASKS_PER_SUITE = 10
SUITE_TITLES = {'libero_spatial': 'Spatial', 'libero_object': 'Object', 'libero_goal': 'Goal',
                'libero_10': 'Long'}


@dataclass(frozen=True)
class Trial:
    """One episode of the protocol: a task of a suite from official initial state ``trial``."""

    suite: str
    task: int
    trial: int

    @property
    def task_id(self) -> str:
        """Return the environment's task id (``libero_spatial/3``)."""
        return f'{self.suite}/{self.task}'

    @property
    def max_steps(self) -> int:
        """Return the suite's published step limit (20 Hz control steps, after the wait)."""
        return SUITES[self.suite]


def plan(suite: str, tasks: typing.Optional[typing.Sequence[int]] = None,
         trials_per_task: int = TRIALS_PER_TASK) -> typing.List[Trial]:
    """Return the protocol's trials for ``suite`` (all tasks unless ``tasks``), task-major."""
    if suite not in SUITES:
        raise ValueError(f'unknown LIBERO suite {suite!r}; valid: {", ".join(SUITES)}')
    tasks = list(range(TASKS_PER_SUITE)) if tasks is None else [int(t) for t in tasks]
    bad = [t for t in tasks if not 0 <= t < TASKS_PER_SUITE]
    if bad or len(set(tasks)) != len(tasks):
        raise ValueError(f'tasks {tasks}: each must be in 0..{TASKS_PER_SUITE - 1}, once')
    if not 1 <= trials_per_task <= TRIALS_PER_TASK:
        raise ValueError(f'trials_per_task must be in 1..{TRIALS_PER_TASK} (the official '
                         f'initial states of a task), got {trials_per_task}')
    return [Trial(suite, t, k) for t in tasks for k in range(trials_per_task)]


class ResultsStore:
    """Finished trials as JSON lines (``episodes.jsonl``): append-only, so runs resume."""

    def __init__(self, path):
        """Use ``path`` (created on the first record); a torn last line is dropped."""
        self.path = Path(path)
        self.rows: typing.List[dict] = []
        if self.path.is_file():
            lines = self.path.read_text().splitlines()
            for number, line in enumerate(lines, 1):
                try:
                    self.rows.append(json.loads(line))
                except json.JSONDecodeError:
                    if number != len(lines):     # only the last line can be cut by a kill
                        raise ValueError(f'{self.path}:{number} is not JSON; the results '
                                         'file is damaged') from None
            self._rewrite()

    def _rewrite(self):
        self.path.write_text(''.join(json.dumps(r) + '\n' for r in self.rows))

    def done(self) -> typing.Set[Trial]:
        """Return the trials already recorded."""
        return {Trial(r['suite'], r['task'], r['trial']) for r in self.rows}

    def remaining(self, trials: typing.Sequence[Trial]) -> typing.List[Trial]:
        """Return the trials of ``trials`` not yet recorded, in order."""
        done = self.done()
        return [t for t in trials if t not in done]

    def record(self, trial: Trial, success: bool, **extra) -> dict:
        """Append one finished trial (flushed to disk before returning)."""
        row = {**asdict(trial), 'success': bool(success), **extra}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, 'a', encoding='utf-8') as stream:
            stream.write(json.dumps(row) + '\n')
            stream.flush()
        self.rows.append(row)
        return row


def table(rows: typing.Iterable[dict]) -> dict:
    """
    Return success rates: per task, per suite (mean over its trials) and the average of suites.

    ``{'tasks': {suite: {task: {'trials', 'successes', 'success_rate'}}}, 'suites': {suite:
    {...}}, 'average': rate or None}``.
    """
    tasks: typing.Dict[str, typing.Dict[int, dict]] = {}
    for row in rows:
        cell = tasks.setdefault(row['suite'], {}).setdefault(
            int(row['task']), {'trials': 0, 'successes': 0})
        cell['trials'] += 1
        cell['successes'] += int(bool(row['success']))
    suites = {}
    for suite, cells in tasks.items():
        for cell in cells.values():
            cell['success_rate'] = cell['successes'] / cell['trials']
        trials = sum(c['trials'] for c in cells.values())
        wins = sum(c['successes'] for c in cells.values())
        suites[suite] = {'trials': trials, 'successes': wins, 'success_rate': wins / trials,
                         'tasks': len(cells)}
    ordered = [s for s in SUITES if s in suites]
    average = (sum(suites[s]['success_rate'] for s in ordered) / len(ordered)
               if ordered else None)
    return {'tasks': {s: dict(sorted(tasks[s].items())) for s in ordered},
            'suites': {s: suites[s] for s in ordered}, 'average': average}


def markdown_table(summary: dict, names: typing.Optional[typing.Dict[str, str]] = None) -> str:
    """Return the paper-style tables: success % per task of each suite, then per suite."""
    lines = []
    for suite, cells in summary['tasks'].items():
        lines += [f'| {SUITE_TITLES[suite]} task | trials | success % |', '|---|---|---|']
        for task, cell in cells.items():
            label = (names or {}).get(f'{suite}/{task}', '')
            lines.append(f'| {task}{": " + label if label else ""} | {cell["trials"]} | '
                         f'{100 * cell["success_rate"]:.1f} |')
        lines.append('')
    suites = summary['suites']
    lines.append('| ' + ' | '.join(SUITE_TITLES[s] for s in suites) + ' | Avg |')
    lines.append('|' + '---|' * (len(suites) + 1))
    average = summary['average']
    lines.append('| ' + ' | '.join(f'{100 * v["success_rate"]:.1f}' for v in suites.values())
                 + f' | {"-" if average is None else f"{100 * average:.1f}"} |')
    return '\n'.join(lines) + '\n'
