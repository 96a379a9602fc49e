"""
Recover what is still readable from a rosbag2 recording whose storage file was cut short.

A robot that loses power while recording leaves a bag that rosbags cannot open at all: an MCAP
file without its summary and end magic (``File end magic is invalid``), or an SQLite database
with pages missing (``database disk image is malformed``). ``repair_bag`` reads such a bag front
to back, record by record (MCAP) or row by row (SQLite), keeps every message that still reads and
writes those, raw CDR bytes unchanged and in their original order, to a new bag in the same
storage format. The source is only read. The returned summary says what was recovered and, where
the source's metadata.yaml records it, how many messages and seconds were lost.

    python -m dit4dit_train.bag_repair DAMAGED_BAG --output REPAIRED_BAG

MCAP files are read without their footer or summary: Schema, Channel and Message records, also
those inside (uncompressed, zstd or lz4) Chunk records, up to the end of the data section or the
first record that is cut off or does not parse. Of a chunk cut off by the end of the file, the
messages that decompress completely are kept unless ``salvage_partial_chunk`` is off. SQLite
databases are read through apsw (which rosbags uses too) by id ranges, skipping the rows whose
pages fail, with the file seen as its whole pages only, so no row comes back with zeros for the
part that was cut off. Message
definitions come from the bag (MCAP schemas, SQLite ``message_definitions``); types the bag holds
no definition for are taken from ``typestore`` (by default ``bag_types.make_typestore()``).
Topics whose type neither knows are left out and named in the summary. Publish times and MCAP
sequence numbers are not kept: rosbags writes each message's log time as its publish time.
"""

import argparse
from contextlib import contextmanager
from pathlib import Path
import re
import shutil
import struct
import sys
import tempfile
import time
import zlib

import apsw
import lz4.frame
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import get_types_from_idl, get_types_from_msg, get_typestore, Stores
import yaml

from .bag_types import make_typestore

if sys.version_info >= (3, 14):  # pragma: no cover
    from compression import zstd
else:
    from backports import zstd

MCAP_MAGIC = b'\x89MCAP0\r\n'
SQLITE_MAGIC = b'SQLite format 3\x00'
STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
SUFFIXES = {'.mcap': 'mcap', '.db3': 'sqlite3'}

OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x02, 0x03, 0x04, 0x05, 0x06
OP_METADATA, OP_DATA_END = 0x0C, 0x0F
RECORD_NAMES = {
    0x01: 'header', 0x02: 'footer', 0x03: 'schema', 0x04: 'channel', 0x05: 'message',
    0x06: 'chunk', 0x07: 'message index', 0x08: 'chunk index', 0x09: 'attachment',
    0x0A: 'attachment index', 0x0B: 'statistics', 0x0C: 'metadata', 0x0D: 'metadata index',
    0x0E: 'summary offset', 0x0F: 'data end',
}
READ_RECORDS = (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_METADATA)
IDL_SEPARATOR = '=' * 80 + '\n'
STREAM_PIECE = 1 << 16


class RepairError(Exception):
    """Nothing can be recovered: not a bag, no storage file, destination not empty..."""


class _Damaged(Exception):
    """A record whose content does not parse."""


class _Fields:
    """Little-endian MCAP fields read from ``buf[pos:end]``; ``_Damaged`` when it runs short."""

    def __init__(self, buf, pos=0, end=None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def left(self):
        return self.end - self.pos

    def take(self, size):
        if size > self.left():
            raise _Damaged('its content is shorter than its fields say')
        data = self.buf[self.pos:self.pos + size]
        self.pos += size
        return data

    def u16(self):
        return struct.unpack('<H', self.take(2))[0]

    def u32(self):
        return struct.unpack('<I', self.take(4))[0]

    def u64(self):
        return struct.unpack('<Q', self.take(8))[0]

    def text(self, size):
        try:
            return bytes(self.take(size)).decode('utf-8')
        except UnicodeDecodeError:
            raise _Damaged('a string is not UTF-8') from None

    def string(self):
        return self.text(self.u32())

    def string_map(self):
        size = self.u32()
        if size > self.left():
            raise _Damaged('a map runs past the record')
        sub = _Fields(self.buf, self.pos, self.pos + size)
        self.pos += size
        result = {}
        while sub.left():
            key = sub.string()
            result[key] = sub.string()
        return result

    def rest(self):
        return self.take(self.left())


def _decompress(compression, data):
    """Decompress a complete chunk's records."""
    try:
        if compression == '':
            return bytes(data)
        if compression == 'zstd':
            return zstd.decompress(data)
        if compression == 'lz4':
            return lz4.frame.decompress(data)
    except Exception as err:  # each codec raises its own error types
        raise _Damaged(f'{compression} data does not decompress ({err})') from None
    raise _Damaged(f'unsupported chunk compression {compression!r}')


def _decompress_prefix(compression, data):
    """Decompress what can be of the beginning of a chunk's records; never raises."""
    if compression == '':
        return bytes(data)
    if compression == 'zstd':
        decoder = zstd.ZstdDecompressor()
    elif compression == 'lz4':
        decoder = lz4.frame.LZ4FrameDecompressor()
    else:
        return b''
    parts = []
    try:
        for start in range(0, len(data), STREAM_PIECE):
            parts.append(decoder.decompress(data[start:start + STREAM_PIECE]))
            if decoder.eof:
                break
    except Exception:  # damaged data: keep what decoded before it
        pass
    return b''.join(parts)


def _parse_definition(msgtype, text, encoding):
    """Return the rihs01 hash of ``msgtype`` from a stored definition alone, or None."""
    try:
        if text.startswith(IDL_SEPARATOR + 'IDL: '):
            types = {}
            for part in text.split(IDL_SEPARATOR)[1:]:
                types.update(get_types_from_idl(part.split('\n', 1)[1]))
        elif encoding in ('', 'ros2msg'):
            types = get_types_from_msg(text, msgtype)
        else:
            return None
        store = get_typestore(Stores.EMPTY)
        store.register(types)
        return store.hash_rihs01(msgtype)
    except Exception:  # rosbags' parsers raise many error types
        return None


class _Definitions:
    """Message definitions for the output: from the bag where it holds them, else a typestore."""

    def __init__(self, typestore):
        self._typestore = typestore
        self._cache = {}

    def store(self):
        if self._typestore is None:
            self._typestore = make_typestore()
        return self._typestore

    def resolve(self, msgtype, text, encoding):
        """Return ``(msgdef, rihs01, origin)`` for ``msgtype``, or None when nothing knows it."""
        key = (msgtype, text, encoding)
        if key not in self._cache:
            self._cache[key] = self._resolve(msgtype, text, encoding)
        return self._cache[key]

    def _resolve(self, msgtype, text, encoding):
        if not msgtype:
            return None
        if text:
            rihs01 = _parse_definition(msgtype, text, encoding)
            if rihs01:
                return text, rihs01, 'bag'
        store = self.store()
        if msgtype not in store.fielddefs:
            return None
        msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
        return msgdef, store.hash_rihs01(msgtype), 'typestore'


class _Progress:
    """Progress lines on stderr, at most one a second."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.last = time.monotonic()

    def tick(self, text):
        now = time.monotonic()
        if self.enabled and now - self.last >= 1.0:
            self.last = now
            print(f'[repair] {text}', file=sys.stderr, flush=True)


class _Output:
    """The repaired bag: connections as the source declares them, messages as they read."""

    def __init__(self, dst, storage, definitions, chunk_zstd=False, message_zstd=False):
        self.writer = Writer(dst, version=9, storage_plugin=STORAGES[storage])
        if chunk_zstd:
            self.writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        elif message_zstd:
            self.writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
        self.message_zstd = message_zstd
        self.definitions = definitions
        self.connections = {}   # source key -> output Connection, or None for a skipped topic
        self.topic_of = {}      # source key -> topic
        self.shared = {}        # (topic, type, format, qos) -> output Connection
        self.topics = {}        # topic -> {'type', 'messages', 'skipped'}
        self.skipped = {}       # topic -> why
        self.notes = []
        self.count = 0
        self.first_ns = None
        self.last_ns = None
        self.writer.open()

    def connect(self, key, topic, msgtype, serialization_format, qos_text, text='', encoding='',
                recorded_hash=''):
        """Declare a source connection (MCAP channel, SQLite topic) under ``key``."""
        self.topic_of[key] = topic
        self.topics.setdefault(topic, {'type': msgtype, 'messages': 0, 'skipped': 0})
        try:
            qos = parse_qos(qos_text or '')
        except Exception:  # unreadable QoS: the topic is still worth keeping
            qos = []
            self.notes.append(f'{topic}: offered QoS profiles unreadable, left out')
        fmt = serialization_format or 'cdr'
        shared = (topic, msgtype, fmt, repr(qos))
        if shared in self.shared:
            self.connections[key] = self.shared[shared]
            return
        definition = self.definitions.resolve(msgtype, text, encoding)
        if definition is None:
            self.connections[key] = None
            self.skipped[topic] = (f'no message definition for {msgtype or "(no type)"} '
                                   'in the bag or the typestore')
            return
        msgdef, rihs01, origin = definition
        if origin == 'typestore' and text:
            self.notes.append(f'{msgtype}: the definition stored in the bag does not parse; '
                              "used the typestore's")
        if recorded_hash and recorded_hash != rihs01:
            self.notes.append(f'{msgtype}: recorded type hash {recorded_hash} differs from the '
                              f"written definition's {rihs01}")
        conn = self.writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01,
                                          serialization_format=fmt, offered_qos_profiles=qos)
        self.connections[key] = self.shared[shared] = conn

    def known(self, key):
        """Tell whether a source connection was declared."""
        return key in self.connections

    def write(self, key, log_ns, data):
        """Write one message of source connection ``key``; False if its topic is skipped."""
        stats = self.topics[self.topic_of[key]]
        conn = self.connections[key]
        if conn is None:
            stats['skipped'] += 1
            return False
        if self.message_zstd:
            try:
                data = zstd.decompress(data)
            except zstd.ZstdError:
                raise _Damaged("a message's zstd data does not decompress") from None
        self.writer.write(conn, log_ns, data)
        stats['messages'] += 1
        self.count += 1
        self.first_ns = log_ns if self.first_ns is None else min(self.first_ns, log_ns)
        self.last_ns = log_ns if self.last_ns is None else max(self.last_ns, log_ns)
        return True

    def close(self):
        self.writer.close()

    def abort(self):
        try:
            self.writer.abort()
        except Exception:  # the output is removed anyway
            pass


class _McapFile:
    """Read one MCAP file front to back, without its summary, into an ``_Output``."""

    def __init__(self, path, number, out, progress, salvage=True):
        self.path = path
        self.number = number
        self.out = out
        self.progress = progress
        self.salvage = salvage
        self.schemas = {}
        self.metadata = None
        self.report = {'path': str(path), 'size': path.stat().st_size, 'messages': 0,
                       'complete': False, 'stopped_at': None, 'reason': '', 'chunks': 0,
                       'partial_chunk_messages': 0}

    def run(self):
        """Read the file; return its report."""
        size = self.report['size']
        with self.path.open('rb') as fh:
            if fh.read(8) != MCAP_MAGIC:
                raise RepairError(f'{self.path.name} is not an MCAP file (no MCAP magic)')
            pos = 8
            while True:
                self.report['stopped_at'] = pos
                self.progress.tick(f'{self.path.name}: {self.report["messages"]} messages, '
                                   f'byte {pos} of {size}')
                head = fh.read(9)
                if not head:
                    return self._stop('the file ends after its last complete record')
                if len(head) < 9:
                    return self._stop('truncated record header')
                opcode, length = struct.unpack('<BQ', head)
                name = RECORD_NAMES.get(opcode, f'0x{opcode:02x}')
                if opcode == 0:
                    return self._stop('damaged record (opcode 0x00)')
                if opcode in (OP_DATA_END, OP_FOOTER):
                    self.report['complete'] = True
                    return self._stop('complete')
                if length > size - pos - 9:
                    if opcode != OP_CHUNK:
                        return self._stop(f'truncated {name} record')
                    return self._stop(self._cut_chunk(fh.read()))
                pos += 9 + length
                if opcode not in READ_RECORDS:    # indexes, attachments, ...: not needed
                    fh.seek(pos)
                    continue
                try:
                    self._record(opcode, _Fields(fh.read(length)))
                except _Damaged as err:
                    self.report['stopped_at'] = pos - 9 - length
                    return self._stop(f'damaged {name} record: {err}')

    def _stop(self, reason):
        self.report['reason'] = reason
        return self.report

    def _cut_chunk(self, content):
        if not self.salvage:
            return 'truncated chunk (lost)'
        before = self.report['messages']
        try:
            self._chunk(_Fields(content), complete=False)
        except _Damaged:
            pass
        salvaged = self.report['messages'] - before
        self.report['partial_chunk_messages'] = salvaged
        if not salvaged:
            return 'truncated chunk (lost)'
        return f'truncated chunk ({salvaged} messages salvaged from its readable part)'

    def _record(self, opcode, fields):
        if opcode == OP_SCHEMA:
            self._schema(fields)
        elif opcode == OP_CHANNEL:
            self._channel(fields)
        elif opcode == OP_MESSAGE:
            self._message(fields)
        elif opcode == OP_CHUNK:
            self._chunk(fields, complete=True)
        elif opcode == OP_METADATA:
            self._metadata(fields)

    def _schema(self, fields):
        sid = fields.u16()
        name = fields.string()
        encoding = fields.string()
        text = fields.text(fields.u32())
        if sid == 0:
            raise _Damaged('schema id 0')
        self.schemas.setdefault(sid, (name, encoding, text))

    def _channel(self, fields):
        cid = fields.u16()
        sid = fields.u16()
        topic = fields.string()
        encoding = fields.string()
        metadata = fields.string_map()
        key = (self.number, cid)
        if self.out.known(key):
            return
        if sid and sid not in self.schemas:
            raise _Damaged(f'channel {cid} refers to unknown schema {sid}')
        msgtype, schema_encoding, text = self.schemas.get(sid, ('', '', ''))
        self.out.connect(key, topic, msgtype, encoding, metadata.get('offered_qos_profiles', ''),
                         text, schema_encoding)

    def _message(self, fields):
        cid = fields.u16()
        fields.u32()  # sequence
        log_ns = fields.u64()
        fields.u64()  # publish time
        key = (self.number, cid)
        if not self.out.known(key):
            raise _Damaged(f'message on unknown channel {cid}')
        self.report['messages'] += self.out.write(key, log_ns, bytes(fields.rest()))

    def _chunk(self, fields, complete):
        fields.take(16)  # message start and end time
        size = fields.u64()
        crc = fields.u32()
        compression = fields.string()
        compressed = fields.u64()
        if complete:
            raw = _decompress(compression, fields.take(compressed))
            if len(raw) != size:
                raise _Damaged(f'decompressed to {len(raw)} bytes instead of {size}')
            if crc and zlib.crc32(raw) != crc:
                raise _Damaged('CRC mismatch')
        else:
            raw = _decompress_prefix(compression, fields.take(min(compressed, fields.left())))
            raw = raw[:size]
        inner = _Fields(memoryview(raw))
        while inner.left() >= (1 if complete else 9):
            opcode = inner.take(1)[0]
            length = inner.u64()
            if length > inner.left():
                if complete:
                    raise _Damaged("a record inside runs past the chunk's end")
                break
            record = _Fields(inner.buf, inner.pos, inner.pos + length)
            inner.pos += length
            if opcode in (0, OP_CHUNK):
                raise _Damaged(f'a record with opcode 0x{opcode:02x} inside')
            if opcode in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE):
                self._record(opcode, record)
        if complete:
            self.report['chunks'] += 1

    def _metadata(self, fields):
        name = fields.string()
        entries = fields.string_map()
        if name == 'rosbag2' and 'serialized_metadata' in entries:
            self.metadata = _bag_info(entries['serialized_metadata'])


def _sqlite_geometry(path):
    """Return (page size, pages in the header) of an SQLite file; RepairError if it is none."""
    with path.open('rb') as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise RepairError(f'{path.name} is not a readable database (no SQLite header)')
    page_size = struct.unpack('>H', header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise RepairError(f'{path.name} is not a readable database (page size {page_size})')
    return page_size, struct.unpack('>I', header[28:32])[0]


class _WholePagesFile(apsw.VFSFile):
    """
    A database file seen as its whole pages only, its header's page count no more than those.

    SQLite reads pages past the end of a cut file as zeros, and the last page of a large row's
    overflow chain, zeroed, goes unnoticed: that row would come back with a zeroed tail. With the
    page count capped, every reference past the end fails as corrupt instead.
    """

    def __init__(self, filename, flags, size, pages):
        super().__init__('', filename, flags)
        self.size = size
        self.pages = pages

    def xFileSize(self):  # noqa: N802 - apsw's method name
        return min(self.size, super().xFileSize())

    def xRead(self, amount, offset):  # noqa: N802 - apsw's method name
        if offset >= self.size:
            return b''
        data = super().xRead(min(amount, self.size - offset), offset)
        if self.pages is not None and offset <= 28 and offset + len(data) >= 32:
            data = bytearray(data)
            data[28 - offset:32 - offset] = struct.pack('>I', self.pages)
            data = bytes(data)
        return data


class _WholePagesVFS(apsw.VFS):
    """An apsw VFS opening main databases as ``_WholePagesFile``; registered while in use."""

    def __init__(self, name, size, pages):
        self.name = name
        self.size = size
        self.pages = pages
        super().__init__(name, '')

    def xOpen(self, name, flags):  # noqa: N802 - apsw's method name
        if flags[0] & apsw.SQLITE_OPEN_MAIN_DB:
            return _WholePagesFile(name, flags, self.size, self.pages)
        return super().xOpen(name, flags)


@contextmanager
def _open_sqlite(path, notes):
    """
    Open a rosbag2 database with apsw, read-only and seen as its whole pages only.

    One with a WAL or hot journal beside it is opened as a copy (with those), so that SQLite
    applies them. Python's sqlite3 module is not used: it cannot take a VFS, and its cursors read
    a row ahead, so the row before a damaged one is lost with it.
    """
    sidecars = [Path(f'{path}{s}') for s in ('-wal', '-journal')]
    sidecars = [p for p in sidecars if p.is_file() and p.stat().st_size]
    page_size, header_pages = _sqlite_geometry(path)
    with tempfile.TemporaryDirectory(prefix='bag_repair_') as tmp:
        vfs = None
        if sidecars:
            copy = Path(tmp) / path.name
            shutil.copyfile(path, copy)
            for sidecar in sidecars:
                shutil.copyfile(sidecar, Path(tmp) / sidecar.name)
            notes.append(f'{path.name}: read together with '
                         f'{", ".join(p.name for p in sidecars)} (through a copy)')
            opener = {'filename': str(copy)}
        else:
            pages = path.stat().st_size // page_size
            if pages * page_size != path.stat().st_size:
                notes.append(f'{path.name}: its last, partial page is left out')
            vfs = _WholePagesVFS(f'bag_repair_{id(path)}_{time.monotonic_ns()}',
                                 pages * page_size, pages if pages < header_pages else None)
            opener = {'filename': path.resolve().as_uri() + '?mode=ro&immutable=1',
                      'flags': apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI,
                      'vfs': vfs.name}
        try:
            conn = apsw.Connection(**opener)
        except apsw.Error as err:
            if vfs is not None:
                vfs.unregister()
            raise RepairError(f'{path.name} is not a readable database ({err})') from None
        try:
            yield conn
        finally:
            conn.close()
            if vfs is not None:
                vfs.unregister()


class _SqliteFile:
    """Read one rosbag2 SQLite database row by row into an ``_Output``, skipping what fails."""

    COLUMNS = ('id', 'name', 'type', 'serialization_format', 'offered_qos_profiles',
               'type_description_hash')

    def __init__(self, path, number, out, progress):
        self.path = path
        self.number = number
        self.out = out
        self.progress = progress
        self.metadata = None
        self.report = {'path': str(path), 'size': path.stat().st_size, 'messages': 0,
                       'complete': False, 'last_id': None, 'stopped_after_id': None,
                       'unreadable_ids': [], 'reason': ''}

    def run(self):
        """Read the database; return its report."""
        with _open_sqlite(self.path, self.out.notes) as conn:
            try:
                tables = {row[0] for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            except apsw.Error as err:
                raise RepairError(f'{self.path.name} is not a readable database ({err})') from None
            if not {'topics', 'messages'} <= tables:
                raise RepairError(f'{self.path.name} is not a rosbag2 database '
                                  '(no topics and messages tables)')
            self._topics(conn, tables)
            if 'metadata' in tables:
                try:
                    row = conn.execute(
                        'SELECT metadata FROM metadata ORDER BY id DESC LIMIT 1').fetchone()
                    self.metadata = _bag_info(row[0]) if row else None
                except apsw.Error:
                    pass
            self._messages(conn)
        bad = self.report['unreadable_ids']
        self.report['complete'] = not bad
        self.report['reason'] = bad[0][2] if bad else 'complete'
        self.report['stopped_after_id'] = bad[0][0] - 1 if bad else None
        return self.report

    def _topics(self, conn, tables):
        definitions = {}
        try:
            if 'message_definitions' in tables:
                for msgtype, encoding, text, _ in conn.execute(
                        'SELECT topic_type, encoding, encoded_message_definition, '
                        'type_description_hash FROM message_definitions ORDER BY id'):
                    definitions.setdefault(msgtype, (encoding, text))
        except apsw.Error as err:
            self.out.notes.append(f'{self.path.name}: message_definitions unreadable ({err})')
        try:
            present = {row[1] for row in conn.execute('PRAGMA table_info(topics)')}
            columns = [c for c in self.COLUMNS if c in present]
            rows = conn.execute(f'SELECT {", ".join(columns)} FROM topics ORDER BY id').fetchall()
        except apsw.Error as err:
            raise RepairError(
                f'{self.path.name}: the topics table is unreadable ({err})') from None
        for row in rows:
            topic = dict(zip(columns, row))
            encoding, text = definitions.get(topic['type'], ('', ''))
            self.out.connect((self.number, topic['id']), topic['name'], topic['type'],
                             topic.get('serialization_format', 'cdr'),
                             topic.get('offered_qos_profiles', ''), text or '', encoding or '',
                             topic.get('type_description_hash', ''))

    def _messages(self, conn):
        try:
            lowest, highest = conn.execute('SELECT min(id), max(id) FROM messages').fetchone()
        except apsw.Error:
            try:
                lowest, highest = conn.execute('SELECT min(id) FROM messages').fetchone()[0], None
            except apsw.Error:
                lowest, highest = 1, None
        if lowest is None:
            return
        limit = highest if highest is not None else 2**62
        next_id, cursor = lowest, None
        while True:
            try:
                if cursor is None:
                    cursor = conn.execute(
                        'SELECT id, topic_id, timestamp, data FROM messages '
                        'WHERE id >= ? AND id <= ? ORDER BY id', (next_id, limit))
                row = cursor.fetchone()
            except apsw.Error as err:
                cursor = None
                resume = self._next_readable(conn, next_id + 1, limit)
                last = resume - 1 if resume is not None else highest
                self.report['unreadable_ids'].append([next_id, last, str(err)])
                if resume is None:
                    return
                next_id = resume
                continue
            if row is None:
                return
            next_id = row[0] + 1
            self._row(*row)

    def _row(self, mid, topic_id, log_ns, data):
        key = (self.number, topic_id)
        if not self.out.known(key):
            self.report['unreadable_ids'].append([mid, mid, f'unknown topic id {topic_id}'])
            return
        try:
            self.report['messages'] += self.out.write(key, log_ns, data)
        except _Damaged as err:
            self.report['unreadable_ids'].append([mid, mid, str(err)])
            return
        self.report['last_id'] = mid
        self.progress.tick(f'{self.path.name}: {self.report["messages"]} messages, id {mid}')

    @staticmethod
    def _next_readable(conn, start, limit):
        """Return the first id >= start whose lookup does not fail (galloping), or None."""
        def readable(mid):
            try:
                conn.execute('SELECT id FROM messages WHERE id = ?', (mid,)).fetchone()
                return True
            except apsw.Error:
                return False

        if start > limit:
            return None
        if readable(start):
            return start
        bad, step = start, 1
        while True:
            probe = min(bad + step, limit)
            if readable(probe):
                break
            if probe == limit:
                return None
            bad, step = probe, step * 2
        while probe - bad > 1:
            mid = (bad + probe) // 2
            if readable(mid):
                probe = mid
            else:
                bad = mid
        return probe


def _bag_info(text):
    """Return the ``rosbag2_bagfile_information`` mapping of serialized metadata, or None."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(data, dict) and isinstance(data.get('rosbag2_bagfile_information'), dict):
        data = data['rosbag2_bagfile_information']
    return data if isinstance(data, dict) and 'message_count' in data else None


def _read_metadata(bag_dir, notes):
    path = bag_dir / 'metadata.yaml'
    if not path.is_file():
        return None
    try:
        info = _bag_info(path.read_text(encoding='utf-8', errors='replace'))
    except OSError as err:
        info = None
        notes.append(f'metadata.yaml unreadable ({err})')
    if info is None:
        notes.append('metadata.yaml does not parse as rosbag2 metadata')
    return info


def _natural(path):
    return [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', path.name)]


def _storage_kind(path):
    name = path.name[:-5] if path.name.endswith('.zstd') else path.name
    return SUFFIXES.get(Path(name).suffix)


def _find_storage(src, bag_dir, info, notes):
    """Return the storage files, in recording order, and their storage format."""
    if src.is_file():
        files = [src]
    else:
        found = sorted((p for p in bag_dir.iterdir() if p.is_file() and _storage_kind(p)),
                       key=_natural)
        listed = []
        for name in (info or {}).get('relative_file_paths') or []:
            path = bag_dir / str(name)
            if path in found:
                listed.append(path)
            else:
                notes.append(f'{name} is listed in metadata.yaml but missing')
        files = listed + [p for p in found if p not in listed]
    if not files or not _storage_kind(files[0]):
        raise RepairError(f'no rosbag2 storage file (*.mcap or *.db3) in {bag_dir}')
    kinds = {_storage_kind(p) for p in files}
    if len(kinds) > 1:
        raise RepairError(f'{bag_dir} holds both MCAP and SQLite storage files')
    return files, kinds.pop()


def _unpack_zstd(path, tmp, notes):
    """Decompress a file-compressed storage file (as far as it goes) into ``tmp``."""
    target = Path(tmp) / path.name[:-5]
    decoder = zstd.ZstdDecompressor()
    with path.open('rb') as src, target.open('wb') as dst:
        try:
            while piece := src.read(1 << 20):
                while piece:
                    dst.write(decoder.decompress(piece))
                    if not decoder.eof:
                        break
                    piece, decoder = decoder.unused_data, zstd.ZstdDecompressor()
        except zstd.ZstdError as err:
            notes.append(f'{path.name}: zstd data damaged ({err}), read up to there')
    notes.append(f'{path.name} was decompressed; the repaired bag is not file-compressed')
    return target


def _chunk_compression(path):
    """Return the compression of an MCAP file's first chunk ('' when it has none)."""
    with path.open('rb') as fh:
        if fh.read(8) != MCAP_MAGIC:
            return ''
        while len(head := fh.read(9)) == 9:
            opcode, length = struct.unpack('<BQ', head)
            if opcode == OP_CHUNK:
                fields = _Fields(fh.read(min(length, 28 + 4 + 256)))
                try:
                    fields.take(28)
                    return fields.string()
                except _Damaged:
                    return ''
            if opcode in (0, OP_DATA_END, OP_FOOTER):
                return ''
            fh.seek(length, 1)
    return ''


def _check_destination(dst, bag_dir):
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise RepairError(f'destination {dst} exists and is not empty')
    if dst.resolve().is_relative_to(bag_dir.resolve()):
        raise RepairError(f'destination {dst} is inside the damaged bag {bag_dir}')


def repair_bag(src_dir, dst_dir, progress=False, typestore=None, salvage_partial_chunk=True):
    """
    Write every message still readable in a damaged bag to a new bag; return a summary.

    ``src_dir`` is the bag directory (or one of its storage files); ``dst_dir`` must not exist or
    be an empty directory. The new bag has the source's storage format, topics, types,
    serialization formats and QoS; its messages are the source's raw bytes with their log times,
    in the source's order. ``typestore`` supplies the types the bag holds no definition for
    (default ``make_typestore()``). Raises ``RepairError`` when no message can be recovered.

    The summary: ``messages`` recovered, ``first_ns``/``last_ns`` their log times, ``topics``
    (``{topic: {'type', 'messages', 'recorded', 'skipped'}}``), ``recorded_messages``,
    ``recorded_start_ns`` and ``recorded_duration_ns`` (None unless the source metadata says),
    ``lost_messages`` and ``lost_ns`` (None where unknown), ``stopped_at`` (MCAP: byte offset of
    the record where reading stopped) and ``reason``, ``files`` (one report per storage file),
    ``skipped_topics`` and ``notes``.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    if not src.exists():
        raise RepairError(f'{src} does not exist')
    bag_dir = src if src.is_dir() else src.parent
    _check_destination(dst, bag_dir)
    notes = []
    info = _read_metadata(bag_dir, notes)
    files, storage = _find_storage(src, bag_dir, info, notes)
    message_zstd = (info or {}).get('compression_mode', '') == 'message'
    ticker = _Progress(progress)
    with tempfile.TemporaryDirectory(prefix='bag_repair_') as tmp:
        files = [_unpack_zstd(p, tmp, notes) if p.name.endswith('.zstd') else p for p in files]
        chunk_zstd = storage == 'mcap' and _chunk_compression(files[0]) == 'zstd'
        existed = dst.exists()
        if existed:
            dst.rmdir()
        out = None
        try:
            out = _Output(dst, storage, _Definitions(typestore), chunk_zstd, message_zstd)
            out.notes.extend(notes)
            reports, embedded = [], None
            for number, path in enumerate(files):
                if storage == 'mcap':
                    reader = _McapFile(path, number, out, ticker, salvage_partial_chunk)
                else:
                    reader = _SqliteFile(path, number, out, ticker)
                try:
                    reports.append(reader.run())
                except RepairError as err:
                    reports.append({'path': str(path), 'size': path.stat().st_size,
                                    'messages': 0, 'complete': False, 'reason': str(err)})
                embedded = embedded or reader.metadata
            if not out.count:
                why = '; '.join(f'{Path(r["path"]).name}: {r["reason"]}' for r in reports)
                raise RepairError(f'no message could be recovered from {src} ({why})')
            out.close()
        except BaseException:
            if out is not None:
                out.abort()
            shutil.rmtree(dst, ignore_errors=True)
            if existed:
                dst.mkdir()
            raise
    if info is None and embedded is not None:
        info = embedded
        out.notes.append('recorded counts are from the metadata stored inside the bag')
    return _summary(src, dst, storage, out, reports, info)


def _summary(src, dst, storage, out, reports, info):
    recorded = recorded_start = recorded_duration = None
    topic_counts = {}
    if info is not None:
        recorded = info.get('message_count')
        recorded_start = (info.get('starting_time') or {}).get('nanoseconds_since_epoch')
        recorded_duration = (info.get('duration') or {}).get('nanoseconds')
        for entry in info.get('topics_with_message_count') or []:
            name = (entry.get('topic_metadata') or {}).get('name')
            topic_counts[name] = topic_counts.get(name, 0) + (entry.get('message_count') or 0)
    lost = lost_ns = None
    if recorded is not None:
        lost = max(0, recorded - out.count)
    if recorded_start is not None and recorded_duration is not None:
        lost_ns = max(0, recorded_start + recorded_duration - out.last_ns)
    damaged = next((r for r in reports if not r['complete']), None)
    topics = {name: {'type': stats['type'], 'messages': stats['messages'],
                     'recorded': topic_counts.get(name), 'skipped': stats['skipped']}
              for name, stats in out.topics.items()}
    return {
        'source': str(src), 'output': str(dst), 'storage': storage,
        'messages': out.count, 'first_ns': out.first_ns, 'last_ns': out.last_ns,
        'duration_ns': out.last_ns - out.first_ns, 'topics': topics,
        'recorded_messages': recorded, 'recorded_start_ns': recorded_start,
        'recorded_duration_ns': recorded_duration, 'lost_messages': lost, 'lost_ns': lost_ns,
        'stopped_at': damaged.get('stopped_at') if damaged else None,
        'stopped_after_id': damaged.get('stopped_after_id') if damaged else None,
        'reason': damaged['reason'] if damaged else 'complete',
        'files': reports, 'skipped_topics': dict(out.skipped), 'notes': list(out.notes),
    }


def topic_lines(summary):
    """Return one ``[repair]`` line per topic of a summary."""
    lines = []
    for name, stats in summary['topics'].items():
        line = f'[repair] {name} ({stats["type"]}): {stats["messages"]} messages recovered'
        if stats['recorded'] is not None:
            line += f' of {stats["recorded"]} recorded'
        if name in summary['skipped_topics']:
            line += f'; skipped {stats["skipped"]}: {summary["skipped_topics"][name]}'
        lines.append(line)
    return lines


def summary_line(summary):
    """Return the one-line account of what a repair recovered and lost."""
    line = (f'[repair] recovered {summary["messages"]} messages '
            f'({summary["duration_ns"] / 1e9:.1f} s, up to t={summary["last_ns"] / 1e9:.3f})')
    recorded = summary['recorded_messages']
    if recorded is not None:
        line += f' of {recorded} recorded'
        if summary['recorded_duration_ns'] is not None:
            line += f' ({summary["recorded_duration_ns"] / 1e9:.1f} s)'
    where = ''
    if summary['reason'] != 'complete':
        if summary['stopped_at'] is not None:
            where = f' after byte {summary["stopped_at"]} ({summary["reason"]})'
        elif summary['stopped_after_id'] is not None:
            where = f' after message id {summary["stopped_after_id"]} ({summary["reason"]})'
        else:
            where = f' ({summary["reason"]})'
    if recorded is None:
        return line + ('; recorded count unknown (no readable metadata.yaml): reading stopped'
                       + where if where else '; recorded count unknown: all storage read')
    if not summary['lost_messages'] and not where:
        return line + ': nothing lost'
    line += f': lost {summary["lost_messages"]} messages'
    if summary['lost_ns'] is not None:
        line += f' / {summary["lost_ns"] / 1e9:.1f} s'
    return line + where


def main(argv=None):
    """Repair a damaged bag from the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog='repair', description='Recover the readable messages of a rosbag2 recording that was '
        'cut short (power loss) into a new, valid bag.')
    parser.add_argument('bag', help='damaged bag directory (or its .mcap/.db3 file)')
    parser.add_argument('--output', '-o', required=True, help='repaired bag directory to create')
    parser.add_argument('--drop-partial-chunk', action='store_true',
                        help='MCAP: keep nothing of a chunk the file ends inside')
    parser.add_argument('--progress', action='store_true', help='progress lines on stderr')
    args = parser.parse_args(argv)
    try:
        summary = repair_bag(args.bag, args.output, progress=args.progress,
                             salvage_partial_chunk=not args.drop_partial_chunk)
    except (RepairError, OSError) as err:
        print(f'repair: error: {err}', file=sys.stderr)
        return 1
    for note in summary['notes']:
        print(f'[repair] note: {note}', file=sys.stderr)
    for line in topic_lines(summary):
        print(line)
    print(summary_line(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main())
