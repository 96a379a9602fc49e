"""LIBERO's evaluation protocol: the trials, a resumable results file, the paper's table."""

from dit4dit_sim.envs.libero import SUITES
from dit4dit_sim.libero_protocol import (markdown_table, plan, ResultsStore, table, Trial,
                                         TRIALS_PER_TASK, WAIT_STEPS)
import pytest


def test_the_plan_is_every_task_on_its_official_initial_states():
    trials = plan('libero_spatial')
    assert len(trials) == 10 * TRIALS_PER_TASK == 500
    assert trials[0] == Trial('libero_spatial', 0, 0) and trials[-1] == Trial(
        'libero_spatial', 9, 49)
    assert {t.max_steps for t in trials} == {220} and WAIT_STEPS == 10
    assert [t.max_steps for t in (Trial('libero_object', 0, 0), Trial('libero_goal', 0, 0),
                                  Trial('libero_10', 0, 0))] == [280, 300, 520]
    assert set(SUITES) == {'libero_spatial', 'libero_object', 'libero_goal', 'libero_10'}
    subset = plan('libero_goal', tasks=[3, 1], trials_per_task=2)
    assert [(t.task_id, t.trial) for t in subset] == [
        ('libero_goal/3', 0), ('libero_goal/3', 1), ('libero_goal/1', 0), ('libero_goal/1', 1)]


@pytest.mark.parametrize('kw, message', [
    ({'suite': 'libero_90'}, 'unknown LIBERO suite'),
    ({'suite': 'libero_spatial', 'tasks': [10]}, r'must be in 0..9'),
    ({'suite': 'libero_spatial', 'tasks': [1, 1]}, 'once'),
    ({'suite': 'libero_spatial', 'trials_per_task': 51}, 'official initial states'),
])
def test_invalid_plans_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        plan(**kw)


def test_a_killed_evaluation_resumes_with_the_trials_it_has_not_run(tmp_path):
    path = tmp_path / 'episodes.jsonl'
    trials = plan('libero_spatial', tasks=[0, 1], trials_per_task=3)
    store = ResultsStore(path)
    for trial, ok in zip(trials[:4], (True, False, True, True)):
        store.record(trial, ok, steps=100)
    with open(path, 'a') as stream:           # killed while writing the fifth
        stream.write('{"suite": "libero_spa')
    again = ResultsStore(path)
    assert again.remaining(trials) == trials[4:]
    assert len(path.read_text().splitlines()) == 4            # the torn line is gone
    again.record(trials[4], False)
    assert ResultsStore(path).remaining(trials) == trials[5:]
    path.write_text('garbage\n' + path.read_text())
    with pytest.raises(ValueError, match='episodes.jsonl:1 is not JSON'):
        ResultsStore(path)


def test_the_table_reports_tasks_suites_and_the_average_as_the_paper_does():
    rows = ([{'suite': 'libero_spatial', 'task': 0, 'trial': k, 'success': k < 3}
             for k in range(4)] +
            [{'suite': 'libero_spatial', 'task': 2, 'trial': k, 'success': True}
             for k in range(2)] +
            [{'suite': 'libero_object', 'task': 5, 'trial': k, 'success': k == 0}
             for k in range(4)])
    summary = table(rows)
    assert summary['tasks']['libero_spatial'][0]['success_rate'] == 0.75
    expected = {'trials': 6, 'successes': 5, 'success_rate': 5 / 6, 'tasks': 2}
    assert summary['suites']['libero_spatial'] == expected
    assert summary['average'] == pytest.approx((5 / 6 + 0.25) / 2)
    text = markdown_table(summary, names={'libero_spatial/0': 'pick up the black bowl'})
    assert '| 0: pick up the black bowl | 4 | 75.0 |' in text
    assert '| Spatial | Object | Avg |' in text and '| 83.3 | 25.0 | 54.2 |' in text
    assert table([])['average'] is None
