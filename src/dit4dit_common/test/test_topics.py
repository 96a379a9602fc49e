"""The topic registry: valid, unique names and types, and the lookups that refuse unknown keys."""

import re

from dit4dit_common import topics
import pytest

NAME = re.compile(r'^(/[A-Za-z_][A-Za-z0-9_]*)+$')
TYPE = re.compile(r'^[a-z][a-z0-9_]*/msg/[A-Z][A-Za-z0-9]*$')


def test_every_entry_is_a_valid_unique_topic():
    names = [t.name for t in topics.TOPICS.values()]
    assert len(names) == len(set(names)), 'two keys share a topic name'
    for key, entry in topics.TOPICS.items():
        assert entry.key == key
        assert NAME.match(entry.name), entry.name
        assert TYPE.match(entry.msgtype), entry.msgtype
        assert entry.description


def test_types_exist_as_message_classes():
    import importlib
    for entry in topics.TOPICS.values():
        package, _, name = entry.msgtype.split('/')
        assert hasattr(importlib.import_module(f'{package}.msg'), name), entry.msgtype


def test_lookups():
    assert topics.name('action_chunk') == '/dit4dit/action_chunk'
    assert topics.resolve('joint_states') == '/joint_states'
    assert topics.resolve('/my/own') == '/my/own'
    assert topics.camera_topic('head') == topics.name('camera')
    assert topics.camera_topic('wrist') == '/wrist_camera/image_raw'
    assert topics.dex3('left', 'cmd') == '/dex3/left/cmd'
    with pytest.raises(topics.UnknownTopic, match="unknown topic key 'chunks'; valid: camera"):
        topics.name('chunks')
    with pytest.raises(KeyError, match="camera view 'belly' has no registry topic"):
        topics.camera_topic('belly')
    for view, key in topics.CAMERA_VIEWS.items():
        assert key in topics.TOPICS, view
