"""
The layer rule: every module outside a ``nodes`` subpackage imports without rclpy.

Core logic (model, runtime, data, training) must be usable from plain Python and torch, e.g. on a
training cluster without ROS. The modules are imported in a fresh interpreter in which importing
rclpy fails; the test names each module that still needs it.
"""

import importlib.util
import json
from pathlib import Path
import subprocess
import sys

# Packages whose modules outside a `nodes` subpackage form the ROS-free core.
CORE_PACKAGES = ('dit4dit_policy', 'dit4dit_train')

PROBE = """
import importlib, json, sys, traceback
for name in ('rclpy', 'rclpy.node'):
    sys.modules[name] = None  # `import rclpy` now raises ImportError
failed = {}
for module in json.loads(sys.argv[1]):
    try:
        importlib.import_module(module)
    except BaseException:
        failed[module] = traceback.format_exc(limit=3)
print(json.dumps(failed))
"""


def core_modules():
    modules = []
    for package in CORE_PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None, f'{package} is not installed'
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob('*.py')):
            rel = path.relative_to(root.parent).with_suffix('')
            if 'nodes' not in rel.parts:
                modules.append('.'.join(rel.parts[:-1] if rel.name == '__init__' else rel.parts))
    return modules


def test_core_modules_import_without_rclpy():
    modules = core_modules()
    assert len(modules) >= len(CORE_PACKAGES)
    res = subprocess.run([sys.executable, '-c', PROBE, json.dumps(modules)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    failed = json.loads(res.stdout.strip().splitlines()[-1])
    assert not failed, 'core modules that need rclpy or fail to import:\n' + '\n'.join(
        f'{name}:\n{tb}' for name, tb in failed.items())
