"""Minimal RFC 6455 framing shared by the load generator and the raw peer."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def header(opcode: int, length: int, masked: bool = False) -> bytes:
    """Frame header (FIN set) for a payload of ``length`` bytes."""
    bit = 0x80 if masked else 0
    if length < 126:
        return struct.pack("!BB", 0x80 | opcode, bit | length)
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, bit | 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, bit | 127, length)


def server_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """An unmasked (server to client) frame."""
    return header(opcode, len(payload)) + payload


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` (masking is its own inverse)."""
    n = len(payload)
    if not n:
        return b""
    reps = key * (n // 4 + 1)
    return (int.from_bytes(payload, "big") ^ int.from_bytes(reps[:n], "big")).to_bytes(n, "big")


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """A masked (client to server) frame."""
    key = os.urandom(4)
    return header(opcode, len(payload), masked=True) + key + mask(payload, key)


def parse(buf: bytearray) -> tuple[list[tuple[int, bytes]], int]:
    """Complete frames at the start of ``buf`` as (opcode, unmasked payload), and bytes used.

    Fragmented messages are returned fragment by fragment (opcode 0 for continuations);
    callers in this suite never receive them from the servers under test.
    """
    frames: list[tuple[int, bytes]] = []
    pos, end = 0, len(buf)
    while end - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        length = b1 & 0x7F
        p = pos + 2
        if length == 126:
            if end - p < 2:
                break
            length = int.from_bytes(buf[p : p + 2], "big")
            p += 2
        elif length == 127:
            if end - p < 8:
                break
            length = int.from_bytes(buf[p : p + 8], "big")
            p += 8
        key = b""
        if b1 & 0x80:
            if end - p < 4:
                break
            key = bytes(buf[p : p + 4])
            p += 4
        if end - p < length:
            break
        payload = bytes(buf[p : p + length])
        frames.append((b0 & 0x0F, mask(payload, key) if key else payload))
        pos = p + length
    return frames, pos
