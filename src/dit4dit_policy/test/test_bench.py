"""The benchmark runs end to end and writes a complete, consistent JSON report."""

import json

from dit4dit_policy import bench


def test_bench_writes_the_breakdown(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert bench.main(['--iters', '3', '--warmup', '1', '--out', str(out),
                       '--override', 'video.num_layers=3', '--override', 'video.tap_block=1',
                       '--camera-height', '120', '--camera-width', '160']) == 0
    report = json.loads(out.read_text())
    stages = ('instruction', 'encode', 'video', 'action')
    assert set(report['query']) == set(stages) | {'total'}
    assert set(report['parts_alone']) == set(stages)
    assert report['batch'] == 1 and report['tap_block'] == 1 and report['video_blocks'] == 3
    assert report['sum_of_parts_p50_ms'] > 0 and report['official_recipe']['p50_ms'] > 0
    ratio = report['query']['total']['p50_ms'] / report['sum_of_parts_p50_ms']
    assert abs(ratio - report['query_over_sum_of_parts']) < 1e-9
    assert '[bench] tiny on cpu: query p50' in capsys.readouterr().out
