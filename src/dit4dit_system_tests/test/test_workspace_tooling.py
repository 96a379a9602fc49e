"""
The workspace's own tooling: `make test`'s runner, env.sh, and the Python versions we promise.

These run against the repository checkout this package was built from, and are skipped where the
package is used without one (e.g. installed from a release).
"""

import ast
import os
from pathlib import Path
import subprocess
import textwrap
import xml.etree.ElementTree as ET

import pytest

ROOT = Path(__file__).resolve().parents[3]
if not (ROOT / 'colcon.meta').is_file() or not (ROOT / 'scripts' / 'test.sh').is_file():
    pytest.skip('not inside the dit4dit_ros repository checkout', allow_module_level=True)


def _python_sources():
    for base in ('src', 'scripts', 'launch', 'tools'):
        yield from (ROOT / base).rglob('*.py')


def test_sources_parse_on_python_3_10():
    """Humble's system Python is 3.10 (Jazzy's 3.12, ours 3.11): no newer syntax anywhere."""
    sources = list(_python_sources())
    assert len(sources) > 10
    for path in sources:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))


def test_workspace_scripts_pass_the_ros_linters():
    """Code outside the ament_python packages (scripts/, dit4dit_msgs' tests) is linted too."""
    from ament_pep257.main import main as pep257_main
    from dit4dit_common.testing import flake8_errors

    paths = [str(ROOT / 'scripts'), str(ROOT / 'src' / 'dit4dit_msgs' / 'test')]
    rc, errors = flake8_errors(paths)
    assert rc == 0, '\n'.join(errors)
    assert pep257_main(argv=paths) == 0


def test_setup_reruns_cleanly_when_nothing_is_left_to_fix():
    """Re-running setup after a requirements change must not fail on already-fixed paths."""
    venv = Path(os.environ.get('DIT4DIT_VENV', ROOT / '.venv'))
    stamp = venv / '.dit4dit-setup'
    if not stamp.is_file():
        pytest.skip('no venv made by make setup')
    saved = stamp.read_text()
    stamp.unlink()
    try:
        res = subprocess.run(['bash', str(ROOT / 'scripts' / 'setup.sh')], capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        assert 'environment ready' in res.stdout
    finally:
        if not stamp.is_file():
            stamp.write_text(saved)


def _package(ws, name, tests):
    pkg = ws / 'src' / name
    (pkg / name).mkdir(parents=True)
    (pkg / 'test').mkdir()
    (pkg / 'resource').mkdir()
    (pkg / 'resource' / name).touch()
    (pkg / name / '__init__.py').touch()
    (pkg / 'package.xml').write_text(textwrap.dedent(f"""\
        <?xml version="1.0"?>
        <package format="3"><name>{name}</name><version>0.0.0</version>
          <description>test</description><maintainer email="a@b.c">a</maintainer>
          <license>MIT</license><export><build_type>ament_python</build_type></export></package>
        """))
    (pkg / 'setup.py').write_text(textwrap.dedent(f"""\
        from setuptools import setup
        setup(name='{name}', version='0.0.0', packages=['{name}'],
              extras_require={{'test': ['pytest']}}, data_files=[
            ('share/ament_index/resource_index/packages', ['resource/{name}']),
            ('share/{name}', ['package.xml'])])
        """))
    for i, body in enumerate(tests):
        (pkg / 'test' / f'test_{i}.py').write_text(f'def test_{i}():\n    {body}\n')


@pytest.fixture(scope='module')
def toy_workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp('ws')
    _package(ws, 'pkg_ok', ['assert 1 + 1 == 2'])
    _package(ws, 'pkg_fail', ['assert True', 'assert 1 + 1 == 3'])
    _package(ws, 'pkg_empty', [])
    subprocess.run(['colcon', 'build'], cwd=ws, check=True, capture_output=True, timeout=300)
    return ws


def _run_tests(ws, *args):
    env = dict(os.environ, DIT4DIT_WS=str(ws))
    env.pop('DIT4DIT_TEST_DOMAIN', None)
    return subprocess.run(['bash', str(ROOT / 'scripts' / 'test.sh'), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_failing_test_makes_the_run_fail(toy_workspace):
    res = _run_tests(toy_workspace, '--packages-select', 'pkg_ok', 'pkg_fail')
    assert res.returncode != 0, res.stdout
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == '2 passed, 1 failed, 0 skipped', res.stdout
    assert any('pkg_fail' in ln and '1 failed, 1 passed' in ln for ln in lines), res.stdout
    assert any(ln.startswith('pkg_fail: FAILED') for ln in lines), res.stdout
    # why, under its name: a CI log that keeps only its tail still shows the cause
    failed = next(i for i, ln in enumerate(lines) if ln.startswith('pkg_fail: FAILED'))
    assert lines[failed + 1].startswith('    ') and 'assert (1 + 1) == 3' in lines[failed + 1], \
        res.stdout


def test_a_green_run_passes(toy_workspace):
    res = _run_tests(toy_workspace, '--packages-select', 'pkg_ok')
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1] == '1 passed, 0 failed, 0 skipped'


def test_a_package_without_tests_fails_the_run(toy_workspace):
    res = _run_tests(toy_workspace, '--packages-select', 'pkg_empty')
    assert res.returncode != 0, res.stdout
    assert 'pkg_empty: ran no test' in res.stdout


def _env_after_sourcing(preset):
    script = f'{preset} source "{ROOT}/env.sh" >/dev/null 2>&1; ' \
             'echo "$ROS_AUTOMATIC_DISCOVERY_RANGE|$FASTRTPS_DEFAULT_PROFILES_FILE"'
    env = {k: v for k, v in os.environ.items()
           if k not in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'FASTRTPS_DEFAULT_PROFILES_FILE')}
    out = subprocess.run(['bash', '-c', script], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip().splitlines()[-1]
    return out.split('|')


def test_env_sh_keeps_discovery_local_and_sets_the_shm_profile():
    discovery, profile = _env_after_sourcing('')
    assert discovery == 'LOCALHOST'
    root = ET.parse(profile).getroot()
    sizes = [int(e.text) for e in root.iter() if e.tag.endswith('segment_size')]
    assert sizes and min(sizes) >= 1024 * 1024, 'shared-memory segment too small for images'


def test_env_sh_respects_a_users_discovery_range():
    discovery, _ = _env_after_sourcing('export ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET;')
    assert discovery == 'SUBNET'


def test_gpu_check_says_so_without_a_gpu_and_runs_its_steps_on_the_cpu(tmp_path):
    """scripts/gpu_check.sh: exit 0 with a reason on a CPU machine; its GPU steps, on the CPU."""
    env = dict(os.environ, GPU_CHECK_DEVICE='cuda', OUT=str(tmp_path / 'none'))
    res = subprocess.run(['bash', str(ROOT / 'scripts' / 'gpu_check.sh')], capture_output=True,
                         text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'no CUDA GPU here' in res.stdout and not (tmp_path / 'none').exists()

    # The same steps on the CPU with the 2B preset made small (2 blocks, 64x64 frames): the
    # random-weights benchmark, the synthetic dataset, the 2B recipe's training steps.
    env = dict(os.environ, GPU_CHECK_DEVICE='cpu', OUT=str(tmp_path / 'cpu'), STEPS='1',
               GPU_CHECK_OVERRIDES='video.num_layers=2 video.tap_block=1 action.num_layers=2 '
                                   'video.image_size=[64,64]')
    res = subprocess.run(['bash', str(ROOT / 'scripts' / 'gpu_check.sh')], capture_output=True,
                         text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith('[gpu_check]')]
    assert any('2B query on cpu' in ln and 'Hz' in ln and 'the FLOPs' in ln for ln in lines)
    assert any('2B training: 1 steps' in ln and 'peak memory' in ln for ln in lines), lines
    import json
    report = json.loads((tmp_path / 'cpu' / 'bench_2b.json').read_text())
    assert report['preset'] == 'cosmos-predict2.5-2b' and report['random_weights']
    assert (tmp_path / 'cpu' / 'train' / 'checkpoint' / 'manifest.json').is_file()
