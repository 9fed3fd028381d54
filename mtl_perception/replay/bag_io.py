# Copyright 2026 The mtl_perception Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Read and write rosbag2 bags (MCAP or SQLite3 storage) without a ROS 2 install.

Everything goes through the pure-Python ``rosbags`` library; the bytes are standard CDR, so a
bag written here plays in ``ros2 bag play`` and a bag from ``ros2 bag record`` reads here. The
message types are the ROS 2 Jazzy set plus vision_msgs, registered from the package's own
interface definitions (``interfaces/vision_msgs/msg``), which give the same type hashes as the
real vision_msgs 4.x.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
import shutil
import sqlite3
import struct
from typing import Iterator

from mtl_perception.resources import share_directory
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore

__all__ = ['BagError', 'BagReader', 'BagWriter', 'STORAGES', 'TopicInfo', 'interface_directory',
           'open_bag', 'typestore']

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
BASE_STORE = Stores.ROS2_JAZZY
VISION_MSGS_PACKAGE = 'vision_msgs'
# Files a bag directory may hold; only such directories are deleted by overwrite=True.
_BAG_SUFFIXES = ('.mcap', '.db3', '.db3-shm', '.db3-wal', '.db3-journal', '.zstd', '.yaml')
# rmw's "infinite" duration as rosbag2 Jazzy writes it into offered_qos_profiles.
_INFINITE = QosTime(sec=9223372036, nsec=854775807)
_STORAGE_ERRORS = (ReaderError, sqlite3.Error, struct.error, EOFError, OSError, KeyError,
                   IndexError, AssertionError, ValueError)


class BagError(ValueError):
    """A bag cannot be read or written; the message names the path and the problem."""


@dataclass(frozen=True)
class TopicInfo:
    """A topic of a bag: its message type and how many messages it holds."""

    msgtype: str
    count: int


def interface_directory() -> Path:
    """Return the directory holding the vision_msgs ``.msg`` definitions the package ships."""
    return share_directory() / 'interfaces' / VISION_MSGS_PACKAGE / 'msg'


def _build_typestore() -> Typestore:
    store = get_typestore(BASE_STORE)
    msg_dir = interface_directory()
    files = sorted(msg_dir.glob('*.msg'))
    if not files:
        raise FileNotFoundError(f'no vision_msgs definitions (*.msg) in {msg_dir}')
    types = {}
    for path in files:
        types.update(get_types_from_msg(path.read_text(encoding='utf-8'),
                                        f'{VISION_MSGS_PACKAGE}/msg/{path.stem}'))
    store.register(types)
    return store


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """
    Return the shared typestore: ROS 2 Jazzy messages plus the package's vision_msgs.

    Message classes are ``typestore().types['sensor_msgs/msg/Image']`` etc.; they take every
    field explicitly. Do not register further types into it (it is shared); readers keep a
    private store for unknown types found in a bag.
    """
    return _build_typestore()


def default_qos(depth: int = 10, reliable: bool = True) -> Qos:
    """Return the QoS profile recorded as a topic's offered profile (as rclpy's default)."""
    return Qos(
        history=QosHistory.KEEP_LAST, depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.VOLATILE, deadline=_INFINITE, lifespan=_INFINITE,
        liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_INFINITE,
        avoid_ros_namespace_conventions=False)


def _looks_like_bag(path: Path) -> bool:
    return all(p.is_file() and p.name.endswith(_BAG_SUFFIXES) for p in path.iterdir())


class BagWriter:
    """
    Write a rosbag2 bag; use as a context manager.

    ``add_topic(name, msgtype)`` once per topic, then ``write(topic, timestamp_ns, message)``
    with a message object of the typestore's classes or its CDR bytes. Leaving the ``with``
    block normally writes ``metadata.yaml``; leaving it through an exception deletes the
    partial bag, so a bag that exists is complete.
    """

    def __init__(self, path: str | Path, storage: str = 'mcap', *, overwrite: bool = False,
                 version: int = 9, custom_data: dict | None = None) -> None:
        """
        Prepare to write a bag directory at ``path`` (created on entering the context).

        ``custom_data``: str -> str pairs stored in ``metadata.yaml`` (rosbag2 custom_data).
        Raises FileExistsError when ``path`` exists, unless ``overwrite`` is set and ``path``
        holds only bag files; ValueError for an unknown storage ('mcap' or 'sqlite3').
        """
        if storage not in STORAGES:
            raise ValueError(f'unknown bag storage {storage!r}; expected one of '
                             f'{sorted(STORAGES)}')
        if version not in (8, 9):
            raise ValueError(f'rosbag2 metadata version must be 8 or 9, got {version}')
        self.path = Path(path)
        self.storage = storage
        self.version = version
        self.overwrite = overwrite
        self.custom_data = {str(k): str(v) for k, v in (custom_data or {}).items()}
        self._writer: Writer | None = None
        self._connections: dict = {}

    def __enter__(self) -> 'BagWriter':
        """Create the bag directory and open the storage."""
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Finish the bag, or delete it when the block raised."""
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:  # noqa: A003 - mirrors rosbags' Writer.open
        """Create the bag directory and open the storage."""
        if self.path.exists() or self.path.is_symlink():
            if not self.overwrite:
                raise FileExistsError(f'bag output {self.path} exists already; choose another '
                                      'path or overwrite it')
            if self.path.is_dir() and not self.path.is_symlink():
                if not _looks_like_bag(self.path):
                    raise FileExistsError(
                        f'refusing to overwrite {self.path}: it holds files that are not part '
                        'of a bag')
                shutil.rmtree(self.path)
            else:
                self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = Writer(self.path, version=self.version,
                                  storage_plugin=STORAGES[self.storage])
            for key, value in self.custom_data.items():
                self._writer.set_custom_data(key, value)
            self._writer.open()
        except WriterError as error:
            raise BagError(f'cannot create bag {self.path}: {error}') from error

    def add_topic(self, name: str, msgtype: str, *, qos: Qos | None = None) -> None:
        """
        Declare a topic of type ``msgtype`` (e.g. 'sensor_msgs/msg/Image').

        ``qos`` is the offered profile recorded for ``ros2 bag play`` (default: reliable,
        volatile, keep last 10).
        """
        writer = self._require_open()
        if name in self._connections:
            raise ValueError(f'topic {name!r} was already added to bag {self.path}')
        store = typestore()
        if msgtype not in store.types:
            raise ValueError(f'unknown message type {msgtype!r} for topic {name!r}')
        self._connections[name] = writer.add_connection(
            name, msgtype, typestore=store,
            offered_qos_profiles=[qos if qos is not None else default_qos()])

    def write(self, topic: str, timestamp_ns: int, message) -> None:
        """Write one message (object or CDR bytes) with receive time ``timestamp_ns``."""
        writer = self._require_open()
        connection = self._connections.get(topic)
        if connection is None:
            raise ValueError(f'topic {topic!r} was not added to bag {self.path}; '
                             f'known: {sorted(self._connections)}')
        timestamp_ns = int(timestamp_ns)
        if timestamp_ns < 0:
            raise ValueError(f'timestamp_ns must be >= 0, got {timestamp_ns}')
        if isinstance(message, (bytes, bytearray, memoryview)):
            data = message
        else:
            data = typestore().serialize_cdr(message, connection.msgtype)
        writer.write(connection, timestamp_ns, data)

    def close(self) -> None:
        """Write ``metadata.yaml`` and close the storage."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def abort(self) -> None:
        """Close without finishing and delete the partial bag."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.abort()
            finally:
                shutil.rmtree(self.path, ignore_errors=True)

    def _require_open(self) -> Writer:
        if self._writer is None:
            raise RuntimeError(f'bag {self.path} is not open; use BagWriter as a context manager')
        return self._writer


class BagReader:
    """
    Read a rosbag2 bag written by ``ros2 bag record`` or by :class:`BagWriter`.

    Use :func:`open_bag`; close with ``close()`` or a ``with`` block.
    """

    def __init__(self, path: Path, reader: Reader, storage: str) -> None:
        """Wrap an open rosbags reader (use :func:`open_bag`)."""
        self.path = path
        self.storage = storage
        self._reader = reader
        self._store = typestore()
        self._private_store = False

    def __enter__(self) -> 'BagReader':
        """Return the open reader."""
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Close the reader."""
        self.close()

    def close(self) -> None:
        """Close the bag's storage."""
        if self._reader.is_open:
            self._reader.close()

    @property
    def message_count(self) -> int:
        """Return the number of messages in the bag."""
        return int(self._reader.message_count)

    @property
    def start_ns(self) -> int:
        """Return the timestamp of the first message (0 for an empty bag)."""
        return int(self._reader.start_time) if self.message_count else 0

    @property
    def end_ns(self) -> int:
        """Return the timestamp of the last message (0 for an empty bag)."""
        return int(self._reader.end_time) - 1 if self.message_count else 0

    @property
    def custom_data(self) -> dict:
        """Return the str -> str custom_data of ``metadata.yaml`` (empty when there is none)."""
        custom = getattr(self._reader.storage, 'metadata', None)
        return dict(getattr(custom, 'custom', None) or {})

    def topics(self) -> dict:
        """Return ``{topic name: TopicInfo(msgtype, count)}``."""
        return {name: TopicInfo(info.msgtype or '', int(info.msgcount))
                for name, info in self._reader.topics.items()}

    def messages(self, topics=None, *, raw: bool = False) -> Iterator[tuple]:
        """
        Yield ``(topic, timestamp_ns, message)`` in time order.

        ``topics``: names to read (default all); ``raw``: yield the CDR bytes instead of
        deserialised messages (e.g. to republish them unchanged).
        """
        connections = self._reader.connections
        if topics is not None:
            wanted = {topics} if isinstance(topics, str) else set(topics)
            missing = wanted - {c.topic for c in connections}
            if missing:
                raise BagError(f'bag {self.path} has no topic(s) {sorted(missing)}; it has '
                               f'{sorted(self.topics())}')
            connections = [c for c in connections if c.topic in wanted]
            if not connections:
                return
        if not raw:
            for connection in connections:
                self._ensure_type(connection)
        iterator = self._reader.messages(connections=connections)
        seen = set()
        while True:
            try:
                connection, timestamp, data = next(iterator)
            except StopIteration:
                break
            except _STORAGE_ERRORS as error:
                raise BagError(f'bag {self.path} is damaged ({self.storage} storage): '
                               f'{error}') from error
            seen.add(connection.topic)
            if raw:
                yield connection.topic, int(timestamp), bytes(data)
                continue
            try:
                message = self._store.deserialize_cdr(data, connection.msgtype)
            except Exception as error:  # noqa: B902 - any decoder failure means bad bytes
                raise BagError(f'bag {self.path}: cannot decode a {connection.msgtype} '
                               f'message on {connection.topic} at {timestamp}: '
                               f'{error}') from error
            yield connection.topic, int(timestamp), message
        # rosbags matches storage and metadata.yaml topics by type and QoS too, and silently
        # skips the messages of a topic where the two disagree.
        silent = sorted({c.topic for c in connections if c.msgcount} - seen)
        if silent:
            raise BagError(f'bag {self.path}: metadata.yaml lists messages on {silent} but the '
                           f'{self.storage} storage holds none that match (the metadata and '
                           'the storage disagree on the topic type or QoS)')

    def _ensure_type(self, connection) -> None:
        """Register a type the store lacks from the definition stored in the bag."""
        if connection.msgtype in self._store.types:
            return
        definition = connection.msgdef.data if connection.msgdef else ''
        if not definition:
            raise BagError(f'bag {self.path}: topic {connection.topic} has message type '
                           f'{connection.msgtype}, which is unknown here and the bag holds '
                           'no definition for it')
        if not self._private_store:
            self._store, self._private_store = _build_typestore(), True
        try:
            self._store.register(get_types_from_msg(definition, connection.msgtype))
        except Exception as error:  # noqa: B902 - rosbags raises several parser errors
            raise BagError(f'bag {self.path}: cannot use the stored definition of '
                           f'{connection.msgtype}: {error}') from error


def _detect_storage(path: Path) -> str:
    if path.is_file():
        return 'sqlite3' if path.suffix == '.db3' else 'mcap'
    if any(path.glob('*.db3')):
        return 'sqlite3'
    return 'mcap'


def open_bag(path: str | Path) -> BagReader:
    """
    Open a bag: a rosbag2 directory, or a bare ``.mcap`` / ``.db3`` storage file.

    A directory without ``metadata.yaml`` but with a single storage file (a recording that was
    killed) is read from that file. Raises :class:`BagError` naming the path and the problem
    for a missing path, something that is not a bag, a corrupt ``metadata.yaml`` or a
    truncated storage file.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f'bag {path} does not exist')
    target = path
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        files = sorted(path.glob('*.mcap')) + sorted(path.glob('*.db3'))
        if len(files) != 1:
            raise BagError(f'{path} is not a rosbag2 bag: no metadata.yaml and '
                           f'{len(files)} storage files (.mcap/.db3)')
        target = files[0]
    elif path.is_file() and path.suffix not in ('.mcap', '.db3'):
        raise BagError(f'{path} is not a bag: expected a rosbag2 directory or a .mcap/.db3 '
                       'file')
    storage = _detect_storage(target)
    try:
        reader = Reader(target)
        reader.open()
    except (FileNotFoundError, *_STORAGE_ERRORS) as error:
        raise BagError(f'cannot open bag {path} ({storage} storage): {error}') from error
    return BagReader(path, reader, storage)
