"""
Bags cut short (power lost while recording) are repaired into new bags with what still reads.

Each damaged bag is a copy of an intact synthetic recording with its storage file truncated (or a
byte flipped); the messages read back from the repaired bag are compared, bytes and log times,
with those of the intact original.
"""

import hashlib
import os
from pathlib import Path
import shutil
import sqlite3
import subprocess
import sys

from dit4dit_train.bag_repair import main, repair_bag, RepairError, summary_line
from dit4dit_train.bag_types import make_typestore
from dit4dit_train.synthetic_bags import write_bag
from mcap.reader import make_reader
from mcap.stream_reader import breakup_chunk, StreamReader
from mcap.writer import CompressionType, Writer as McapWriter
import pytest
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def store():
    return make_typestore(require=('dit4dit_msgs',))


@pytest.fixture(scope='module')
def originals(tmp_path_factory, store):
    """Intact 3 s bags per storage (about 3.4 MB: four MCAP chunks) and their messages."""
    root = tmp_path_factory.mktemp('originals')
    bags = {}
    for storage in ('mcap', 'sqlite3'):
        bag = root / storage
        write_bag(bag, store, storage=storage, seconds=3.0, size=(96, 128))
        bags[storage] = (bag, read_messages(bag, store))
    return bags


def read_messages(bag, store=None):
    """Return (topic, type, log time, raw bytes) of every message, as AnyReader reads them."""
    with AnyReader([Path(bag)], default_typestore=store) as reader:
        return [(c.topic, c.msgtype, t, bytes(raw)) for c, t, raw in reader.messages()]


def storage_file(bag):
    return next(p for p in Path(bag).iterdir() if p.suffix in ('.mcap', '.db3'))


def damaged_copy(bag, dst, cut=None, fraction=None):
    """Copy a bag; cut its storage file at byte ``cut`` (or at ``fraction`` of its size)."""
    shutil.copytree(bag, dst)
    path = storage_file(dst)
    size = path.stat().st_size
    os.truncate(path, cut if cut is not None else int(size * fraction))
    return dst


def digest(bag):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(bag).iterdir()}


def chunks(path):
    """Return ``(start offset, message count)`` of each chunk, read with the mcap package."""
    with open(path, 'rb') as fh:
        indexes = sorted(make_reader(fh).get_summary().chunk_indexes,
                         key=lambda c: c.chunk_start_offset)
        result = []
        for index in indexes:
            fh.seek(index.chunk_start_offset)
            chunk = next(iter(StreamReader(fh, skip_magic=True, emit_chunks=True).records))
            count = sum(type(r).__name__ == 'Message' for r in breakup_chunk(chunk))
            result.append((index.chunk_start_offset, index.chunk_length, count))
    return result


def check_repaired(summary, repaired, original, store, prefix=True):
    """Check a repaired bag against the messages of the intact original; return its messages."""
    got = read_messages(repaired)
    assert got, 'nothing recovered'
    if prefix:
        assert got == original[:len(got)]
    else:   # an in-order subsequence of the original
        remaining = iter(original)
        assert all(any(m == o for o in remaining) for m in got)
    assert summary['messages'] == len(got)
    assert summary['first_ns'] == got[0][2] and summary['last_ns'] == got[-1][2]
    assert summary['duration_ns'] == got[-1][2] - got[0][2]
    for topic, stats in summary['topics'].items():
        assert stats['messages'] == sum(m[0] == topic for m in got)
    with AnyReader([Path(repaired)]) as reader:   # types come from the repaired bag itself
        assert {c.topic for c in reader.connections} == {m[0] for m in original}
        for conn in reader.connections:
            first = next(reader.messages(connections=[conn]), None)
            if first is not None:
                reader.deserialize(first[2], conn.msgtype)
    return got


def recorded(summary, original, bag):
    """Check the summary's recorded numbers and losses against the intact original."""
    with AnyReader([Path(bag)]) as reader:
        start, duration = reader.start_time, reader.duration
    assert summary['recorded_messages'] == len(original)
    assert summary['lost_messages'] == len(original) - summary['messages']
    assert summary['recorded_start_ns'] == start
    # rosbags' Reader adds 1 ns to the duration it reports
    assert summary['recorded_duration_ns'] == duration - 1
    assert summary['lost_ns'] == start + duration - 1 - summary['last_ns']
    assert summary['topics']['/joint_states']['recorded'] == sum(
        m[0] == '/joint_states' for m in original)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_a_half_cut_bag_keeps_what_reads(tmp_path, originals, store, storage):
    bag, original = originals[storage]
    cut = damaged_copy(bag, tmp_path / 'cut', fraction=0.5)
    with pytest.raises(AnyReaderError):     # what the repair is for
        read_messages(cut, store)
    before = digest(cut)
    summary = repair_bag(cut, tmp_path / 'repaired', typestore=store)
    assert digest(cut) == before
    assert storage_file(tmp_path / 'repaired').suffix == storage_file(bag).suffix
    got = check_repaired(summary, tmp_path / 'repaired', original, store,
                         prefix=storage == 'mcap')
    assert 0 < len(got) < len(original)
    recorded(summary, original, bag)
    assert summary['lost_messages'] > 0 and summary['lost_ns'] > 0
    line = summary_line(summary)
    assert f'recovered {len(got)} messages' in line and f'of {len(original)} recorded' in line
    assert f'lost {len(original) - len(got)} messages' in line
    if storage == 'mcap':
        assert 0 < summary['stopped_at'] <= storage_file(cut).stat().st_size
        assert summary['reason'].startswith('truncated chunk')
        assert f'after byte {summary["stopped_at"]}' in line
    else:
        assert summary['stopped_after_id'] >= 1
        assert 'malformed' in summary['reason']


@pytest.mark.parametrize('fraction', [0.25, 0.6, 0.9])
def test_sqlite_cut_mid_page_returns_no_half_rows(tmp_path, originals, store, fraction):
    """Rows whose pages (large rows: overflow pages) reach past the cut are left out whole."""
    bag, original = originals['sqlite3']
    cut = damaged_copy(bag, tmp_path / 'cut', fraction=fraction)
    assert storage_file(cut).stat().st_size % 4096     # the last page is partial
    summary = repair_bag(cut, tmp_path / 'repaired', typestore=store)
    got = check_repaired(summary, tmp_path / 'repaired', original, store, prefix=False)
    assert 0 < len(got) < len(original)
    assert summary['files'][0]['unreadable_ids'] and summary['stopped_after_id'] >= 1
    recorded(summary, original, bag)


def test_mcap_cut_between_and_inside_chunks(tmp_path, originals, store):
    bag, original = originals['mcap']
    (start, length, _), (before_0, before_1) = chunks(storage_file(bag))[2], [
        c[2] for c in chunks(storage_file(bag))[:2]]
    whole = before_0 + before_1

    cut = damaged_copy(bag, tmp_path / 'between', cut=start)
    summary = repair_bag(cut, tmp_path / 'between_repaired', typestore=store)
    assert len(check_repaired(summary, tmp_path / 'between_repaired', original, store)) == whole
    assert summary['stopped_at'] == start
    assert summary['reason'] == 'the file ends after its last complete record'

    cut = damaged_copy(bag, tmp_path / 'inside', cut=start + length // 2)
    summary = repair_bag(cut, tmp_path / 'salvaged', typestore=store)
    got = check_repaired(summary, tmp_path / 'salvaged', original, store)
    assert whole < len(got) < whole + chunks(storage_file(bag))[2][2]
    assert summary['files'][0]['partial_chunk_messages'] == len(got) - whole
    assert summary['stopped_at'] == start and 'salvaged' in summary['reason']

    summary = repair_bag(cut, tmp_path / 'dropped', typestore=store, salvage_partial_chunk=False)
    assert len(check_repaired(summary, tmp_path / 'dropped', original, store)) == whole
    assert summary['reason'] == 'truncated chunk (lost)'
    assert 'after byte' in summary_line(summary) and '(truncated chunk (lost))' in summary_line(
        summary)


def test_zstd_chunks_are_salvaged_and_written_compressed(tmp_path, originals, store):
    _, original = originals['mcap']
    bag = tmp_path / 'zstd'
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        conns = {}
        for topic, msgtype, log_ns, raw in original:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
            writer.write(conns[topic], log_ns, raw)
    cut = damaged_copy(bag, tmp_path / 'cut', fraction=0.6)
    summary = repair_bag(cut, tmp_path / 'repaired', typestore=store)
    got = check_repaired(summary, tmp_path / 'repaired', original, store)
    assert 0 < len(got) < len(original) and summary['files'][0]['partial_chunk_messages'] > 0
    recorded(summary, original, bag)
    with open(storage_file(tmp_path / 'repaired'), 'rb') as fh:
        assert {c.compression for c in make_reader(fh).get_summary().chunk_indexes} == {'zstd'}


def test_foreign_lz4_mcap_without_metadata(tmp_path, originals, store):
    """An MCAP from another writer: lz4 chunks with CRCs, no metadata.yaml; a flipped byte."""
    _, original = originals['mcap']
    bag = tmp_path / 'lz4'
    bag.mkdir()
    with open(bag / 'lz4_0.mcap', 'wb') as fh:
        writer = McapWriter(fh, chunk_size=400_000, compression=CompressionType.LZ4)
        writer.start(profile='ros2')
        channels = {}
        for topic, msgtype, log_ns, raw in original:
            if topic not in channels:
                text = store.generate_msgdef(msgtype, ros_version=2)[0].encode()
                schema = writer.register_schema(msgtype, 'ros2msg', text)
                channels[topic] = writer.register_channel(topic, 'cdr', schema)
            writer.add_message(channels[topic], log_ns, raw, log_ns)
        writer.finish()

    summary = repair_bag(bag, tmp_path / 'intact', typestore=get_typestore(Stores.EMPTY))
    assert check_repaired(summary, tmp_path / 'intact', original, store) == original
    assert summary['reason'] == 'complete' and summary['recorded_messages'] is None

    offsets = chunks(bag / 'lz4_0.mcap')
    broken = tmp_path / 'flipped'
    shutil.copytree(bag, broken)
    with open(broken / 'lz4_0.mcap', 'r+b') as fh:
        fh.seek(offsets[1][0] + offsets[1][1] // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    summary = repair_bag(broken, tmp_path / 'flipped_repaired')
    got = check_repaired(summary, tmp_path / 'flipped_repaired', original, store)
    assert len(got) == offsets[0][2]
    assert summary['stopped_at'] == offsets[1][0] and summary['reason'].startswith(
        'damaged chunk record')

    cut = damaged_copy(bag, tmp_path / 'cut', fraction=0.5)
    summary = repair_bag(cut, tmp_path / 'cut_repaired')
    assert 0 < len(check_repaired(summary, tmp_path / 'cut_repaired', original, store)) < len(
        original)
    assert summary['lost_messages'] is None
    assert 'recorded count unknown' in summary_line(summary)


def test_custom_types_come_from_the_bag_or_the_typestore(tmp_path, originals, store):
    jazzy = get_typestore(Stores.ROS2_JAZZY)    # knows no dit4dit_msgs
    for storage in ('mcap', 'sqlite3'):         # both store definitions: the bag is enough
        bag, original = originals[storage]
        summary = repair_bag(bag, tmp_path / f'{storage}_jazzy', typestore=jazzy)
        assert not summary['skipped_topics'] and summary['messages'] == len(original)

    bag, original = originals['sqlite3']        # type hashes only, as some recorders leave
    bare = tmp_path / 'bare'
    shutil.copytree(bag, bare)
    with sqlite3.connect(storage_file(bare)) as db:
        db.execute('DELETE FROM message_definitions')
    summary = repair_bag(bare, tmp_path / 'bare_jazzy', typestore=jazzy)
    assert set(summary['skipped_topics']) == {'/dit4dit/episode_event'}
    assert summary['topics']['/dit4dit/episode_event']['skipped'] == 2
    assert summary['messages'] == len(original) - 2
    summary = repair_bag(bare, tmp_path / 'bare_suite', typestore=store)
    assert not summary['skipped_topics']
    check_repaired(summary, tmp_path / 'bare_suite', original, store)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_an_intact_bag_repairs_to_all_its_messages(tmp_path, originals, store, storage):
    bag, original = originals[storage]
    summary = repair_bag(bag, tmp_path / 'repaired', typestore=store)
    assert check_repaired(summary, tmp_path / 'repaired', original, store) == original
    recorded(summary, original, bag)
    assert summary['reason'] == 'complete' and summary['lost_messages'] == 0
    assert summary_line(summary).endswith(': nothing lost')


def test_without_metadata_yaml_the_bag_s_own_metadata_or_nothing(tmp_path, originals, store):
    bag, original = originals['mcap']
    intact = tmp_path / 'intact'
    shutil.copytree(bag, intact)
    (intact / 'metadata.yaml').unlink()
    summary = repair_bag(intact, tmp_path / 'intact_repaired', typestore=store)
    assert summary['recorded_messages'] == len(original) and summary['lost_messages'] == 0
    cut = damaged_copy(intact, tmp_path / 'cut', fraction=0.5)
    summary = repair_bag(cut, tmp_path / 'cut_repaired', typestore=store)
    assert summary['recorded_messages'] is None and summary['lost_ns'] is None
    check_repaired(summary, tmp_path / 'cut_repaired', original, store)


def test_refusals(tmp_path, originals, store):
    bag, _ = originals['mcap']
    busy = tmp_path / 'busy'
    busy.mkdir()
    (busy / 'keep.txt').write_text('mine')
    with pytest.raises(RepairError, match='not empty'):
        repair_bag(bag, busy, typestore=store)
    assert [p.name for p in busy.iterdir()] == ['keep.txt']
    with pytest.raises(RepairError, match='inside'):
        repair_bag(bag, bag / 'repaired', typestore=store)

    empty = tmp_path / 'empty'
    empty.mkdir()
    summary = repair_bag(bag, empty, typestore=store)   # an empty destination is fine
    assert summary['messages'] > 0

    head = tmp_path / 'head_only'   # magic and header record only: nothing to recover
    head.mkdir()
    (head / 'head_only.mcap').write_bytes(storage_file(bag).read_bytes()[:40])
    with pytest.raises(RepairError, match='no message could be recovered'):
        repair_bag(head, tmp_path / 'nothing', typestore=store)
    assert not (tmp_path / 'nothing').exists()


def test_cli(tmp_path, originals, capsys):
    bag, original = originals['sqlite3']
    cut = damaged_copy(bag, tmp_path / 'cut', fraction=0.5)
    assert main([str(cut), '--output', str(tmp_path / 'repaired')]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[0].startswith('[repair] /camera/image_raw (')
    assert lines[-1].startswith('[repair] recovered ') and f'of {len(original)}' in lines[-1]

    assert main([str(cut), '--output', str(tmp_path / 'repaired')]) == 1
    assert 'repair: error: destination' in capsys.readouterr().err
    not_a_bag = tmp_path / 'not_a_bag'
    not_a_bag.mkdir()
    assert main([str(not_a_bag), '-o', str(tmp_path / 'out')]) == 1
    assert 'repair: error: no rosbag2 storage file' in capsys.readouterr().err
    (not_a_bag / 'x.db3').write_bytes(b'not a database' * 100)
    assert main([str(not_a_bag), '-o', str(tmp_path / 'out')]) == 1
    assert 'not a readable database' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_module_entry_point(tmp_path):
    (tmp_path / 'no_bag').mkdir()
    result = subprocess.run(
        [sys.executable, '-m', 'dit4dit_train.bag_repair', str(tmp_path / 'no_bag'), '--output',
         str(tmp_path / 'out')], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith('repair: error: no rosbag2 storage file')
