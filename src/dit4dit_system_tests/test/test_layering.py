"""
The layers, over every package of the workspace: imports only point down the allowed matrix.

* ``ALLOWED``: which of the suite's packages each package may import (its modules and its tests).
  msgs <- common <- {policy, control, g1, sim} <- train (policy only) <- bringup <- system tests;
  sim also reads the G1 driver (the twin answers its protocol), never the other way round.
* Control, the G1 driver and simulation never import torch (nor diffusers, accelerate,
  transformers): they run on the robot's computer or beside a simulator without a GPU stack.
  Checked twice: statically (every ``import`` in the source, lazy ones included) and by importing
  every module with torch blocked.
* Every module outside a ``nodes`` subpackage imports without rclpy: core logic is usable from
  plain Python (a training cluster, a notebook).
* Each package's ``package.xml`` declares the workspace and ROS packages its modules import.
"""

import ast
import importlib.util
import json
import os
from pathlib import Path
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

SRC = Path(__file__).resolve().parents[2]
BASE = {'dit4dit_msgs', 'dit4dit_common'}
ALLOWED = {
    'dit4dit_msgs': set(),
    'dit4dit_common': {'dit4dit_msgs'},
    'dit4dit_policy': BASE,
    'dit4dit_control': BASE,
    'dit4dit_g1': BASE,
    # the G1 twin speaks the G1 driver's protocol from the robot's side (its CRC, its tables)
    'dit4dit_sim': BASE | {'dit4dit_g1'},
    'dit4dit_train': BASE | {'dit4dit_policy'},
    'dit4dit_bringup': BASE | {'dit4dit_policy', 'dit4dit_control', 'dit4dit_g1',
                               'dit4dit_sim', 'dit4dit_train'},
}
ALLOWED['dit4dit_system_tests'] = set(ALLOWED)
NO_TORCH = ('dit4dit_control', 'dit4dit_g1', 'dit4dit_sim')
TORCH_STACK = {'torch', 'torchvision', 'diffusers', 'accelerate', 'transformers', 'safetensors'}
# ROS packages (rosidl interfaces and Python libraries) that package.xml must declare if imported
ROS_PACKAGES = {
    'rclpy', 'rcl_interfaces', 'builtin_interfaces', 'std_msgs', 'std_srvs', 'sensor_msgs',
    'trajectory_msgs', 'diagnostic_msgs', 'visualization_msgs', 'rosgraph_msgs', 'unitree_hg',
    'unitree_api', 'ament_index_python', 'dit4dit_msgs'}

if not (SRC / 'dit4dit_bringup' / 'package.xml').is_file():
    pytest.skip('needs the source tree of the workspace', allow_module_level=True)


def packages():
    """Return {package: its directory} for every ament package under src/."""
    return {p.parent.name: p.parent for p in sorted(SRC.glob('*/package.xml'))}


def python_files(directory: Path, tests: bool):
    """Yield the package's module files (``tests``: its test files instead)."""
    for path in sorted(directory.rglob('*.py')):
        rel = path.relative_to(directory)
        if rel.parts[0] in ('build', 'install', 'log') or rel.name == 'setup.py':
            continue
        if (rel.parts[0] == 'test') == tests:
            yield path


def imported(path: Path):
    """Return the top-level names a file imports (absolute imports, lazy ones included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split('.')[0])
    return names


def test_the_matrix_covers_every_package():
    assert set(packages()) == set(ALLOWED), 'a package is missing from ALLOWED'
    for package, allowed in ALLOWED.items():
        assert package not in allowed
        for dependency in allowed:      # a layer's dependencies are below it: no cycles
            assert package not in ALLOWED[dependency] or package == 'dit4dit_system_tests'


@pytest.mark.parametrize('tests', [False, True], ids=['modules', 'tests'])
def test_imports_point_only_down_the_matrix(tests):
    wrong = []
    for package, directory in packages().items():
        for path in python_files(directory, tests):
            for name in imported(path):
                if name.startswith('dit4dit_') and name != package and \
                        name not in ALLOWED[package]:
                    wrong.append(f'{path.relative_to(SRC)} imports {name}')
    assert not wrong, 'imports against the layer matrix:\n' + '\n'.join(wrong)


def test_control_g1_and_simulation_never_import_torch():
    wrong = [f'{path.relative_to(SRC)} imports {name}'
             for package in NO_TORCH for path in python_files(packages()[package], False)
             for name in imported(path) & TORCH_STACK]
    assert not wrong, '\n'.join(wrong)


PROBE = """
import importlib, json, sys, traceback
blocked, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in blocked:
    sys.modules[name] = None  # `import name` now raises ImportError
failed = {}
for module in modules:
    try:
        importlib.import_module(module)
    except BaseException:
        failed[module] = traceback.format_exc(limit=4)
print(json.dumps(failed))
"""


def installed_modules(package, skip_nodes):
    """Return the dotted names of an installed package's modules."""
    spec = importlib.util.find_spec(package)
    assert spec is not None, f'{package} is not installed'
    root = Path(next(iter(spec.submodule_search_locations)))
    modules = []
    for path in sorted(root.rglob('*.py')):
        rel = path.relative_to(root.parent).with_suffix('')
        if skip_nodes and 'nodes' in rel.parts:
            continue
        modules.append('.'.join(rel.parts[:-1] if rel.name == '__init__' else rel.parts))
    return modules


def _probe(blocked, modules):
    res = subprocess.run([sys.executable, '-c', PROBE, json.dumps(blocked), json.dumps(modules)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, 'MUJOCO_GL': 'egl'})
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_every_module_outside_nodes_imports_without_rclpy():
    modules = [m for p in ALLOWED if p not in ('dit4dit_msgs', 'dit4dit_system_tests')
               for m in installed_modules(p, skip_nodes=True)]
    assert len(modules) > 40
    failed = _probe(['rclpy', 'rclpy.node'], modules)
    assert not failed, 'modules that need rclpy or fail to import:\n' + '\n'.join(
        f'{name}:\n{tb}' for name, tb in failed.items())


def test_control_g1_and_simulation_import_with_torch_blocked():
    modules = [m for p in NO_TORCH for m in installed_modules(p, skip_nodes=False)]
    failed = _probe(sorted(TORCH_STACK), modules)
    assert not failed, 'modules that need torch:\n' + '\n'.join(
        f'{name}:\n{tb}' for name, tb in failed.items())


def declared(package_dir: Path):
    """Return the package names a package.xml declares (depend, exec_depend, test_depend)."""
    root = ET.parse(package_dir / 'package.xml').getroot()
    return {e.text.strip() for tag in ('depend', 'exec_depend', 'build_depend', 'test_depend')
            for e in root.iter(tag)}


def test_package_xml_declares_what_is_imported():
    missing = []
    for package, directory in packages().items():
        if package == 'dit4dit_msgs':
            continue
        deps = declared(directory)
        for tests in (False, True):
            for path in python_files(directory, tests):
                for name in imported(path):
                    if name == package or not (name.startswith('dit4dit_')
                                               or name in ROS_PACKAGES):
                        continue
                    if name not in deps:
                        missing.append(f'{package}: {path.relative_to(directory)} imports '
                                       f'{name}, package.xml does not declare it')
    assert not missing, '\n'.join(sorted(set(missing)))


def test_declared_workspace_dependencies_respect_the_matrix():
    wrong = [f'{package} declares {dep}'
             for package, directory in packages().items()
             for dep in declared(directory)
             if dep.startswith('dit4dit_') and dep != package and dep not in ALLOWED[package]]
    assert not wrong, '\n'.join(wrong)
