"""TWS API wire framing, kept pure so it can be tested without sockets.

The TWS API (the protocol ``ib_async`` speaks to TWS / IB Gateway) is a stream
of frames: a 4-byte big-endian length, then a payload of text fields, each one
terminated by a NUL byte. The first field is the message id, often followed by
a message version. The connection opens with a handshake that is *not* framed
at its start: the client writes ``b"API\\0"`` followed by one framed field
``v<min>..<max>[ <options>]`` announcing the protocol versions it speaks.

Everything here is a pure function of its input: no I/O, no clock. The
simulator's gateway composes these helpers; the tests can check them alone.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable

#: The only server version the simulator speaks. Every message encoder in the
#: gateway is written against what ``ib_async`` 2.1.0's decoder expects at 178.
SERVER_VERSION = 178

#: The bytes a client writes before its version range.
API_PREFIX = b"API\0"

#: Refuse frames larger than this: a length prefix this big means a corrupt
#: stream (or a hostile peer), and we must not try to allocate it.
MAX_FRAME = 1 << 24

_HEADER = struct.Struct(">I")

#: What one field may be before it is turned into text.
Field = str | int | float | bool | None

_VERSION_RE = re.compile(r"^v(\d+)(?:\.\.(\d+))?(?:\s+(.*))?$")


class ProtocolError(ValueError):
    """The peer sent something that is not the TWS API wire format."""


def format_field(value: Field) -> str:
    """Render one field the way TWS does.

    ``None`` and non-finite floats become the empty string ("unset" on the
    wire); booleans become ``1``/``0`` (checked before ``int``, since ``bool``
    is an ``int``); floats use ``repr`` so no precision is lost.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return repr(value)
    return value


def encode_fields(fields: Iterable[Field]) -> bytes:
    """Build a payload: every field followed by its NUL.

    The last NUL matters: ``ib_async`` splits on NUL and drops the final
    element, so a payload missing its trailing NUL loses its last field.
    """
    parts: list[str] = []
    for f in fields:
        text = format_field(f)
        if "\0" in text:
            raise ProtocolError(f"field {text!r} contains a NUL and would split the message")
        parts.append(text)
        parts.append("\0")
    return "".join(parts).encode()


def frame(payload: bytes) -> bytes:
    """Prefix a payload with its 4-byte big-endian length."""
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return _HEADER.pack(len(payload)) + payload


def encode_message(*fields: Field) -> bytes:
    """One complete framed message, ready for the socket."""
    return frame(encode_fields(fields))


def decode_fields(payload: bytes) -> list[str]:
    """Split a payload into its text fields (the inverse of ``encode_fields``).

    The element after the final NUL is dropped, as ``ib_async`` does; invalid
    UTF-8 is escaped rather than raised so one bad byte cannot kill a session.
    """
    parts = payload.decode(errors="backslashreplace").split("\0")
    parts.pop()
    return parts


def frame_length(header: bytes) -> int:
    """Read the length from a 4-byte frame header, refusing absurd sizes."""
    if len(header) != _HEADER.size:
        raise ProtocolError(f"frame header must be {_HEADER.size} bytes, got {len(header)}")
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    return int(length)


class FrameBuffer:
    """Reassemble frames from arbitrary socket chunks.

    TCP delivers bytes, not messages: one ``recv`` may hold half a frame or
    several. Feed it chunks; it returns the payloads that became complete.
    """

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """Append a chunk; return every payload now complete, in order."""
        self._data.extend(chunk)
        out: list[bytes] = []
        while len(self._data) >= _HEADER.size:
            length = frame_length(bytes(self._data[: _HEADER.size]))
            end = _HEADER.size + length
            if len(self._data) < end:
                break
            out.append(bytes(self._data[_HEADER.size : end]))
            del self._data[:end]
        return out

    def __len__(self) -> int:
        """Bytes buffered but not yet part of a complete frame."""
        return len(self._data)


def parse_version_range(text: str) -> tuple[int, int, str]:
    """Parse the client's ``v<min>..<max>[ <options>]`` announcement.

    Returns ``(min, max, options)``; a single ``v<n>`` means min = max = n.
    """
    m = _VERSION_RE.match(text.strip())
    if m is None:
        raise ProtocolError(f"bad version announcement {text!r}")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    if lo > hi:
        raise ProtocolError(f"empty version range {text!r}")
    return lo, hi, m.group(3) or ""


def handshake_reply(server_version: int, connection_time: str) -> bytes:
    """The server's answer to the version announcement.

    It must be one frame of exactly two fields: ``ib_async`` recognises the
    handshake reply by "no server version yet and two fields".
    """
    return encode_message(server_version, connection_time)


def client_hello(min_version: int, max_version: int, options: str = "") -> bytes:
    """What a client writes first (used by tests that speak raw protocol)."""
    text = f"v{min_version}..{max_version}" + (f" {options}" if options else "")
    return API_PREFIX + frame(text.encode())
