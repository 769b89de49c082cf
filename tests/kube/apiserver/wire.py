"""Server side of the two stream transports kubectl speaks: RFC 6455 websocket and SPDY/3.1.

Only what kubectl's client (client-go remotecommand/portforward, moby/spdystream) sends is
handled; anything else ends the session. Writes are serialised by a lock (several pumps share
one connection).
"""
import base64
import glob
import hashlib
import os
import shutil
import struct
import threading
import zlib

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


class WebSocket:
    """Frames over a connected socket file pair (server side: we read masked frames, write bare)."""

    def __init__(self, rfile, wfile):
        self.rfile, self.wfile = rfile, wfile
        self.lock = threading.Lock()
        self.closed = False

    def _read(self, n):
        b = self.rfile.read(n)
        if b is None or len(b) < n:
            raise EOFError
        return b

    def send(self, payload, opcode=2):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        with self.lock:
            if self.closed and opcode != 8:
                return
            try:
                self.wfile.write(head + payload)
                self.wfile.flush()
            except OSError:
                self.closed = True

    def close(self, code=1000):
        if not self.closed:
            self.send(struct.pack("!H", code), opcode=8)
            self.closed = True

    def recv(self):
        """The next data message's payload (bytes), or None at close/EOF. Pings are answered."""
        buf, first_op = bytearray(), None
        while True:
            try:
                b1, b2 = self._read(2)
                n = b2 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._read(8))[0]
                mask = self._read(4) if b2 & 0x80 else None
                data = bytearray(self._read(n)) if n else bytearray()
            except (EOFError, OSError, ValueError):
                return None
            if mask:
                for i in range(len(data)):
                    data[i] ^= mask[i & 3]
            op = b1 & 0x0F
            if op == 9:
                self.send(bytes(data), opcode=10)
                continue
            if op == 10:
                continue
            if op == 8:
                self.close()
                return None
            if op != 0:
                first_op = op
            buf += data
            if b1 & 0x80:
                if first_op is None:
                    return None
                return bytes(buf)


# ------------------------------------------------------------------------------------------
# SPDY/3.1

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 1
_dict_cache = []


def _kubectl_binaries():
    for p in [os.environ.get("WAND_KUBECTL", ""), shutil.which("kubectl") or ""] + \
            sorted(glob.glob("/usr/lib/google-cloud-sdk/bin/kubectl.1.*")):
        if p and os.path.isfile(os.path.realpath(p)):
            yield os.path.realpath(p)


def spdy_dictionary(dict_id):
    """SPDY/3's zlib header dictionary (a constant of the SPDY/3 draft), read out of a kubectl
    binary on this machine (client-go embeds it) and checked against the DICTID the client's
    zlib stream names, rather than copied into the repo."""
    for d in _dict_cache:
        if zlib.adler32(d) == dict_id:
            return d
    start_mark = b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post"
    for path in _kubectl_binaries():
        with open(path, "rb") as f:
            blob = f.read()
        i = blob.find(start_mark)
        if i < 0:
            continue
        for end in range(i + 1000, min(i + 2000, len(blob))):
            if zlib.adler32(blob[i:end]) == dict_id:
                _dict_cache.append(blob[i:end])
                return blob[i:end]
    raise RuntimeError("SPDY/3 header dictionary not found in any kubectl binary here")


class SpdySession:
    """A SPDY/3.1 server session over a byte transport (read(n) -> bytes|b'', write(bytes)).

    `on_stream(session, stream_id, headers)` is called (in the reader thread) for each SYN_STREAM;
    `on_data(stream_id, data, fin)` for data frames; `on_reset(stream_id)` for RST_STREAM.
    """

    def __init__(self, read, write):
        self._read, self._write = read, write
        self.lock = threading.Lock()
        self.inflate = None
        self.deflate = None
        self.closed = False
        self.on_stream = self.on_data = self.on_reset = None
        self.last_stream = 0

    def _exact(self, n):
        out = bytearray()
        while len(out) < n:
            b = self._read(n - len(out))
            if not b:
                raise EOFError
            out += b
        return bytes(out)

    def _headers_in(self, block):
        if self.inflate is None:
            dict_id = struct.unpack("!I", block[2:6])[0] if block[1] & 0x20 else None
            self.inflate = zlib.decompressobj(zdict=spdy_dictionary(dict_id)) if dict_id is not None \
                else zlib.decompressobj()
        raw = self.inflate.decompress(block)
        n, = struct.unpack("!I", raw[:4])
        pos, h = 4, {}
        for _ in range(n):
            ln, = struct.unpack("!I", raw[pos:pos + 4])
            name = raw[pos + 4:pos + 4 + ln].decode()
            pos += 4 + ln
            lv, = struct.unpack("!I", raw[pos:pos + 4])
            h[name.lower()] = raw[pos + 4:pos + 4 + lv].decode().split("\x00")[0]
            pos += 4 + lv
        return h

    def _headers_out(self, headers):
        raw = struct.pack("!I", len(headers))
        for k, v in headers.items():
            raw += struct.pack("!I", len(k)) + k.encode() + struct.pack("!I", len(v)) + v.encode()
        if self.deflate is None:
            self.deflate = zlib.compressobj(zdict=_dict_cache[0]) if _dict_cache else zlib.compressobj()
        return self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def _send(self, frame):
        with self.lock:
            if self.closed:
                return False
            try:
                self._write(frame)
                return True
            except OSError:
                self.closed = True
                return False

    def _control(self, ftype, flags, body):
        return struct.pack("!HHI", 0x8003, ftype, (flags << 24) | len(body)) + body

    def reply(self, stream_id, headers=None, fin=False):
        with self.lock:
            block = self._headers_out(headers or {})
        self._send(self._control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack("!I", stream_id) + block))

    def data(self, stream_id, data, fin=False):
        for i in range(0, max(len(data), 1), 0xFFFF):
            chunk = data[i:i + 0xFFFF]
            last = i + 0xFFFF >= len(data)
            flags = FLAG_FIN if (fin and last) else 0
            if not self._send(struct.pack("!II", stream_id & 0x7FFFFFFF, (flags << 24) | len(chunk)) + chunk):
                return False
        return True

    def reset(self, stream_id, status=5):  # 5 = CANCEL
        self._send(self._control(RST_STREAM, 0, struct.pack("!II", stream_id, status)))

    def goaway(self):
        self._send(self._control(GOAWAY, 0, struct.pack("!II", self.last_stream, 0)))

    def serve(self):
        """Read frames until EOF/GOAWAY."""
        try:
            while True:
                head = self._exact(8)
                w1, w2 = struct.unpack("!II", head)
                flags, length = w2 >> 24, w2 & 0xFFFFFF
                body = self._exact(length) if length else b""
                if w1 & 0x80000000:
                    ftype = w1 & 0xFFFF
                    if ftype == SYN_STREAM:
                        sid = struct.unpack("!I", body[:4])[0] & 0x7FFFFFFF
                        self.last_stream = max(self.last_stream, sid)
                        headers = self._headers_in(body[10:])
                        self.on_stream(self, sid, headers)
                        if flags & FLAG_FIN:
                            self.on_data(sid, b"", True)
                    elif ftype == RST_STREAM:
                        self.on_reset(struct.unpack("!I", body[:4])[0] & 0x7FFFFFFF)
                    elif ftype == PING:
                        self._send(self._control(PING, 0, body))
                    elif ftype == GOAWAY:
                        return
                    elif ftype == HEADERS:
                        self._headers_in(body[4:])  # keeps the zlib stream in step
                    # SETTINGS, WINDOW_UPDATE: nothing to do (no flow control here)
                else:
                    self.on_data(w1 & 0x7FFFFFFF, body, bool(flags & FLAG_FIN))
        except (EOFError, OSError, ValueError):  # ValueError: the handler closed the file
            return
        finally:
            self.closed = True
