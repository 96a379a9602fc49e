"""
The suite's interfaces are documented field by field, and their generated classes are sound.

Users read these definitions with `ros2 interface show`; an undocumented field is a bug. The
generated Python classes must import and their state constants must be distinct.
"""

import importlib
from pathlib import Path
import re

import pytest

PKG = Path(__file__).resolve().parents[1]
FILES = sorted(PKG.glob('msg/*.msg')) + sorted(PKG.glob('srv/*.srv'))
FIELD = re.compile(r'^[A-Za-z_][\w/]*(\[\d*\])?\s+[A-Za-z_]\w*(\s*=\s*\S+)?\s*(#.*)?$')


def test_every_interface_is_listed_in_cmake():
    cmake = (PKG / 'CMakeLists.txt').read_text()
    assert FILES, 'no interface files found'
    for path in FILES:
        assert f'"{path.parent.name}/{path.name}"' in cmake, f'{path.name} is not generated'


@pytest.mark.parametrize('path', FILES, ids=lambda p: p.name)
def test_every_field_and_constant_is_documented(path):
    text = path.read_text()
    assert text.lstrip().startswith('#'), f'{path.name} has no description comment at the top'
    undocumented = []
    for n, line in enumerate(text.splitlines(), 1):
        code = line.strip()
        if not code or code.startswith('#') or code == '---':
            continue
        assert FIELD.match(code), f'{path.name}:{n}: cannot parse {code!r}'
        if '#' not in code:
            undocumented.append(f'{path.name}:{n}: {code}')
    assert not undocumented, 'fields without a comment:\n' + '\n'.join(undocumented)


@pytest.mark.parametrize('path', FILES, ids=lambda p: p.name)
def test_generated_class_imports_and_constants_are_distinct(path):
    module = importlib.import_module(f'dit4dit_msgs.{path.parent.name}')
    cls = getattr(module, path.stem)
    if path.suffix == '.srv':
        cls.Request()
        cls.Response()
        return
    cls()
    # Each interface has one enumeration (STATE_* or the event kinds): its values must differ.
    values = [getattr(cls, n) for n in dir(cls)
              if n.isupper() and isinstance(getattr(cls, n), int)]
    assert len(values) == len(set(values)), f'{path.stem}: two constants share a value'
