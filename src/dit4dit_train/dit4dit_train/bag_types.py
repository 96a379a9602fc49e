"""
A rosbags typestore that knows the suite's interfaces, read from the installed definitions.

Bags are written and read with ``rosbags`` (no rosbag2 C++ on machines without a ROS install).
rosbags ships the standard Jazzy types; the suite's own messages (``dit4dit_msgs``) and Unitree's
(``unitree_hg``, ``unitree_api``) are registered from the ``.msg`` files their packages install
under ``<prefix>/share/<package>/msg``. Reading the installed text, not a copy, keeps bags and the
generated interfaces from drifting apart.
"""

import os
from pathlib import Path

from rosbags.typesys import get_types_from_msg, get_typestore, Stores

DEFAULT_PACKAGES = ('dit4dit_msgs', 'unitree_hg', 'unitree_api')


def ament_prefixes():
    """Return the install prefixes on ``AMENT_PREFIX_PATH``, in order."""
    return [Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]


def find_message_definitions(packages=DEFAULT_PACKAGES, prefixes=None):
    """
    Return ``{'pkg/msg/Name': msg text}`` for each package found on the prefixes.

    The first prefix that holds a package wins, as with ROS overlays. Packages that are not
    installed are skipped; ``missing_packages`` tells which.
    """
    definitions = {}
    for package in packages:
        for prefix in prefixes if prefixes is not None else ament_prefixes():
            msg_dir = prefix / 'share' / package / 'msg'
            if msg_dir.is_dir():
                for path in sorted(msg_dir.glob('*.msg')):
                    definitions[f'{package}/msg/{path.stem}'] = path.read_text()
                break
    return definitions


def missing_packages(packages=DEFAULT_PACKAGES, prefixes=None):
    """Return the packages of ``packages`` that no prefix provides."""
    found = {name.split('/')[0] for name in find_message_definitions(packages, prefixes)}
    return [p for p in packages if p not in found]


def make_typestore(packages=DEFAULT_PACKAGES, prefixes=None, require=()):
    """
    Return a Jazzy typestore with the installed messages of ``packages`` registered.

    Raises ``LookupError`` naming the packages of ``require`` that are not installed.
    """
    absent = missing_packages(tuple(require), prefixes)
    if absent:
        raise LookupError(
            f'message packages not found on AMENT_PREFIX_PATH: {", ".join(absent)} '
            '(build the workspace and `source env.sh`)')
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for name, text in find_message_definitions(packages, prefixes).items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store
