"""A json file's top-level object read member by member, chosen arrays element by element.

``members(path, stream={"images"})`` yields ``(key, value)`` for each member of the top-level
object in file order; the value of a key in ``stream`` is an iterator over its array's elements,
parsed one at a time (each a plain ``json`` value), which the caller consumes before the next
member. A file of a million image records is so read with one record parsed at a time, not one
dict per record at once (``json.load``: ≈ 0.5 kB per record, measured in BENCHMARKS.md).

What it reads: UTF-8 text (a byte-order mark allowed), parsed by the standard ``json`` decoder
(the same numbers, strings and ``NaN`` / ``Infinity`` constants, seen by ``parse_constant``).
Anything else — invalid json, another encoding, a top level that is not an object, a streamed
member that is not an array, text after the object — raises ``NotStreamable`` at the point met;
the caller then reads the file whole (``io.read_json``), whose error names line and column. A
duplicate key is yielded twice (``json.load`` keeps the last value).

Memory: a window of text of ``CHUNK`` characters or more, plus the largest member not streamed.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Any

#: Bytes read at a time; a value longer than the window doubles the next read.
CHUNK = 1 << 20
_BLANK = re.compile(r"[ \t\n\r]*")


class NotStreamable(Exception):
    """The file is not json this reader follows; read it whole for the exact message."""


class _Text:
    """The decoded text of a binary file, held as a window ``buf[pos:]`` that grows on demand."""

    def __init__(self, f: IO[bytes], parse_constant: Callable[[str], Any] | None) -> None:
        self._f = f
        self._decode = codecs.getincrementaldecoder("utf-8")("strict").decode
        self._decoder = json.JSONDecoder(parse_constant=parse_constant)
        self._first = True
        self.buf, self.pos, self.eof = "", 0, False

    def more(self, at_least: int = CHUNK) -> bool:
        """Append the next ``max(CHUNK, at_least)`` bytes' text; False at the end of the file."""
        if self.eof:
            return False
        raw = self._f.read(max(CHUNK, at_least))
        if self._first:
            self._first = False
            if raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            elif b"\x00" in raw[:4] or raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                raise NotStreamable("not UTF-8")  # json.loads accepts UTF-16/32 too: read it whole
        try:
            text = self._decode(raw, final=not raw)
        except UnicodeDecodeError:
            raise NotStreamable("not UTF-8") from None
        self.eof = not raw
        self.buf, self.pos = self.buf[self.pos :] + text, 0
        return not self.eof

    def peek(self) -> str:
        """The next character after blanks, not consumed; ``""`` at the end of the file."""
        while True:
            match = _BLANK.match(self.buf, self.pos)
            assert match is not None  # the pattern matches the empty string
            self.pos = match.end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise NotStreamable(f"expected {char!r}")
        self.pos += 1

    def value(self) -> Any:
        """The next json value, parsed whole (a number that ends the window is read past)."""
        self.peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if not self.more(2 * (len(self.buf) - self.pos)):
                    raise NotStreamable("invalid json") from None
                continue
            if end == len(self.buf) and self.more():
                continue  # the value may go on in the next chunk (a number, "12" of "123")
            self.pos = end
            return value


def members(
    path: str | Path,
    stream: Collection[str] = (),
    *,
    parse_constant: Callable[[str], Any] | None = None,
) -> Iterator[tuple[str, Any]]:
    """``(key, value)`` of each member of the file's top-level object, in file order.

    Args:
        path: a json file whose top level is an object.
        stream: keys whose array value is yielded as an iterator over its elements.
        parse_constant: called with ``NaN``, ``Infinity``, ``-Infinity`` (as ``json.loads``).

    Raises:
        OSError: the file cannot be opened or read.
        NotStreamable: the file is not UTF-8 json with an object at its top level, or a streamed
            member is not an array (module doc); members before the fault were yielded.
    """
    with open(path, "rb") as f:
        text = _Text(f, parse_constant)
        text.take("{")
        if text.peek() == "}":
            text.pos += 1
        else:
            while True:
                key = text.value()
                if not isinstance(key, str):
                    raise NotStreamable("expected a key")
                text.take(":")
                if key in stream:
                    elements = _elements(text)
                    yield key, elements
                    for _ in elements:  # what the caller left unread
                        pass
                else:
                    yield key, text.value()
                if text.peek() == "}":
                    text.pos += 1
                    break
                text.take(",")
        if text.peek() != "":
            raise NotStreamable("text after the top-level object")


def _elements(text: _Text) -> Iterator[Any]:
    text.take("[")
    if text.peek() == "]":
        text.pos += 1
        return
    while True:
        yield text.value()
        if text.peek() == "]":
            text.pos += 1
            return
        text.take(",")
