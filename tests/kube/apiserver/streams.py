"""pods/exec and pods/portforward: what the kubelet does behind the apiserver, with Docker.

exec: `docker exec -i` in the container, over websocket v5/v4.channel.k8s.io or SPDY/3.1 (v4
status protocol). portforward: a TCP connection made inside the pod's network namespace (a
forked child setns()es into the sandbox's namespace, connects, and hands the socket back), over
SPDY/3.1 or SPDY tunnelled in websocket binary messages.
"""
import ctypes
import json
import os
import socket
import subprocess
import threading

from tests.kube.apiserver.wire import SpdySession

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def exit_status(rc):
    if rc == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command "
                       "[...], exit code %d" % rc,
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(rc)}]}}


def exec_failure(msg):
    return {"metadata": {}, "status": "Failure", "message": msg, "reason": "InternalError",
            "details": {"causes": [{"message": msg}]}, "code": 500}


class Exec:
    """One `docker exec -i` whose streams go to `out(channel, bytes)`; `done(status)` at the end.
    The process ends when its container stops (as the kubelet ends exec streams)."""

    def __init__(self, docker_name, command, stdin, out, done):
        self.out, self.done = out, done
        argv = ["docker", "exec"] + (["-i"] if stdin else []) + [docker_name] + list(command)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self.docker_name = docker_name
        self.first_err = bytearray()
        self.pumps = [threading.Thread(target=self._pump, args=(self.proc.stdout, 1), daemon=True),
                      threading.Thread(target=self._pump, args=(self.proc.stderr, 2), daemon=True)]
        for t in self.pumps:
            t.start()
        self.waiter = subprocess.Popen(["docker", "wait", docker_name], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        threading.Thread(target=self._wait_container, daemon=True).start()
        threading.Thread(target=self._finish, daemon=True).start()

    def _pump(self, f, channel):
        first = True
        while True:
            try:
                d = os.read(f.fileno(), 65536)
            except OSError:
                return
            if not d:
                return
            if first and channel == 2 and (d.startswith(b"OCI runtime exec failed")
                                           or d.startswith(b"Error response from daemon")):
                self.first_err += d  # the runtime's failure, not the command's stderr
                continue
            first = False
            if self.first_err:
                self.first_err += d
                continue
            self.out(channel, d)

    def _wait_container(self):
        # `docker exec -i` outlives a force-removed container (it waits on stdin)
        self.waiter.wait()
        if self.proc.poll() is None:
            self.proc.kill()

    def stdin(self, data):
        if self.proc.stdin:
            try:
                self.proc.stdin.write(data)
            except OSError:
                pass

    def close_stdin(self):
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()

    def _finish(self):
        rc = self.proc.wait()
        if self.waiter.poll() is None:
            self.waiter.kill()
        self.waiter.wait()
        for t in self.pumps:
            t.join(10)
        if self.first_err:
            msg = self.first_err.decode(errors="replace").strip()
            self.done(exec_failure("Internal error occurred: error executing command in container: "
                                   "failed to exec in container: " + msg))
        else:
            self.done(exit_status(137 if rc < 0 else rc))


def exec_websocket(ws, protocol, docker_name, command, stdin):
    """v5/v4.channel.k8s.io: channel byte first; 3 = error (Status JSON), 255 = close (v5)."""
    ended = threading.Event()

    def out(ch, data):
        ws.send(bytes([ch]) + data)

    def done(status):
        ws.send(b"\x03" + json.dumps(status).encode())
        ws.close()
        ended.set()

    ws.send(b"\x01")  # kubectl's v4+ client reads an initial empty frame per stream; harmless
    ex = Exec(docker_name, command, stdin, out, done)
    while not ended.is_set():
        msg = ws.recv()
        if msg is None:
            break
        if not msg:
            continue
        ch, data = msg[0], msg[1:]
        if ch == 0 and data:
            ex.stdin(data)
        elif ch == 255 and data[:1] == b"\x00":
            ex.close_stdin()
    if not ended.is_set():
        ex.kill()
    ended.wait(30)


def exec_spdy(read, write, docker_name, command, stdin, stderr, tty):
    """SPDY/3.1 with X-Stream-Protocol-Version v4.channel.k8s.io: one stream per channel."""
    sess = SpdySession(read, write)
    streams, want = {}, {"error", "stdout"} | ({"stdin"} if stdin else set()) | \
        ({"stderr"} if stderr and not tty else set()) | ({"resize"} if tty else set())
    ready = threading.Event()
    state = {"exec": None, "pending": []}

    def on_stream(s, sid, headers):
        kind = headers.get("streamtype", "")
        streams[kind] = sid
        s.reply(sid)
        if want <= set(streams):
            ready.set()

    handoff = threading.Lock()  # stdin that came before the exec started goes first, in order

    def deliver(ex, data, fin):
        if data:
            ex.stdin(data)
        if fin:
            ex.close_stdin()

    def on_data(sid, data, fin):
        if sid != streams.get("stdin"):
            return
        with handoff:
            if state["exec"] is None:
                state["pending"].append((data, fin))
            else:
                deliver(state["exec"], data, fin)

    sess.on_stream, sess.on_data, sess.on_reset = on_stream, on_data, lambda sid: None
    reader = threading.Thread(target=sess.serve, daemon=True)
    reader.start()
    if not ready.wait(30):
        sess.goaway()
        return
    finished = threading.Event()

    def out(ch, data):
        sid = streams.get("stdout" if ch == 1 else "stderr")
        if sid:
            sess.data(sid, data)

    def done(status):
        if status["status"] != "Success":
            sess.data(streams["error"], json.dumps(status).encode())
        for kind in ("stdout", "stderr", "error"):
            if kind in streams:
                sess.data(streams[kind], b"", fin=True)
        finished.set()

    ex = Exec(docker_name, command, stdin, out, done)
    with handoff:
        for data, fin in state.pop("pending"):
            deliver(ex, data, fin)
        state["exec"] = ex
    while not finished.wait(0.5):
        if not reader.is_alive():  # the client went away
            ex.kill()
            finished.wait(10)
            break
    sess.goaway()


# ------------------------------------------------------------------------------------------
# port-forward

def connect_in_netns(ns_pid, port, timeout=10.0):
    """A TCP socket connected to localhost:port inside the network namespace of ns_pid."""
    nsfd = os.open("/proc/%d/ns/net" % ns_pid, os.O_RDONLY)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # child: only async-signal-safe-ish work, then _exit
        code = 0
        try:
            a.close()
            if _libc.setns(nsfd, CLONE_NEWNET) != 0:
                b.sendall(b"setns failed: errno %d" % ctypes.get_errno())
            else:
                errs = []
                for fam, addr in ((socket.AF_INET, ("127.0.0.1", port)), (socket.AF_INET6, ("::1", port))):
                    s = socket.socket(fam, socket.SOCK_STREAM)
                    s.settimeout(timeout)
                    try:
                        s.connect(addr)
                        s.settimeout(None)
                        socket.send_fds(b, [b"ok"], [s.fileno()])
                        break
                    except OSError as e:
                        errs.append("%s: dial %s %s: connect: %s" % (
                            "IPv4" if fam == socket.AF_INET else "IPv6",
                            "tcp4" if fam == socket.AF_INET else "tcp6",
                            "%s:%d" % addr if fam == socket.AF_INET else "[::1]:%d" % port,
                            (e.strerror or str(e)).lower()))
                        s.close()
                else:
                    b.sendall(" ".join(errs).encode())
        except BaseException:
            code = 1
        os._exit(code)
    os.close(nsfd)
    b.close()
    try:
        msg, fds, _, _ = socket.recv_fds(a, 4096, 1)
    finally:
        a.close()
        os.waitpid(pid, 0)
    if fds:
        return socket.socket(fileno=fds[0])
    raise ConnectionError(msg.decode(errors="replace") or "connect failed")


def portforward(read, write, pod_desc, netns_pid):
    """Serve one port-forward session: pairs of error/data streams per connection (requestid).
    netns_pid() gives the sandbox's PID now (None when the pod is gone)."""
    sess = SpdySession(read, write)
    pairs = {}  # requestid -> {"error": sid, "data": sid, "sock": socket}
    by_sid = {}

    def start(req, p):
        port = int(p["port"])
        try:
            pid = netns_pid()
            if not pid:
                raise ConnectionError("pod not running")
            sock = connect_in_netns(pid, port)
        except (OSError, ConnectionError) as e:
            msg = ("error forwarding port %d to pod %s: failed to execute portforward in network "
                   "namespace: failed to connect to localhost:%d inside namespace, %s "
                   % (port, pod_desc, port, e))
            sess.data(p["error"], msg.encode(), fin=True)
            sess.data(p["data"], b"", fin=True)
            return
        with p["lock"]:  # data that came before the connection goes first, in order
            for data, fin in p.pop("pending", []):
                _send(sock, data, fin)
            p["sock"] = sock

        def pump():
            try:
                while True:
                    d = sock.recv(65536)
                    if not d:
                        break
                    if not sess.data(p["data"], d):
                        break
            except OSError:
                pass
            sess.data(p["data"], b"", fin=True)
            sess.data(p["error"], b"", fin=True)

        threading.Thread(target=pump, daemon=True).start()

    def _send(sock, data, fin):
        try:
            if data:
                sock.sendall(data)
            if fin:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def feed(p, data, fin):
        with p["lock"]:
            sock = p.get("sock")
            if sock is None:
                p.setdefault("pending", []).append((data, fin))
                return
        _send(sock, data, fin)

    def on_stream(s, sid, headers):
        req = headers.get("requestid", "0")
        kind = headers.get("streamtype", "")
        p = pairs.setdefault(req, {"port": headers.get("port", "0"), "lock": threading.Lock()})
        p[kind] = sid
        by_sid[sid] = p
        s.reply(sid)
        if "error" in p and "data" in p:
            threading.Thread(target=start, args=(req, p), daemon=True).start()

    def on_data(sid, data, fin):
        p = by_sid.get(sid)
        if p is not None and sid == p.get("data"):
            feed(p, data, fin)

    def on_reset(sid):
        p = by_sid.get(sid)
        if p is not None and p.get("sock") is not None:
            try:
                p["sock"].close()
            except OSError:
                pass

    sess.on_stream, sess.on_data, sess.on_reset = on_stream, on_data, on_reset
    sess.serve()
    for p in pairs.values():
        if p.get("sock") is not None:
            try:
                p["sock"].close()
            except OSError:
                pass
