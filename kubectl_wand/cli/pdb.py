"""`kubectl wand pdb TARGET`: CPython 3.14's remote pdb inside the live process.

The target runs pdb's own server (``_PdbServer``, as ``python -m pdb -p`` does); its JSON
messages travel as ``pdb`` events and our replies as control frames through the helper. This
is the client side of that protocol, written for any Python 3.10+ (the CLI's).
"""

import codeop
import signal
import sys

import click

from kubectl_wand.cli.common import is_tty, kube_options, reach, status, target_options
from kubectl_wand.cli.shell import Terminal, history_path, no_interrupts, save_history
from kubectl_wand.engine.shell import Ended, Remote
from kubectl_wand.errors import WandError
from kubectl_wand.safe_text import safe


MAX_MESSAGE = 1 << 20  # characters of one pdb message shown (the server cuts there too)


class PdbClient:
    """pdb's client protocol (Lib/pdb.py ``_PdbClient``): messages, prompts, completion."""

    def __init__(self, remote: Remote, term: Terminal, interactive: bool):
        self.remote, self.term, self.interactive = remote, term, interactive
        self.commands = set()
        self.state = "dumb"
        self.multiline = False
        self.detached = False
        self.rl = None
        self.matches = []

    def send(self, **msg):
        self.remote.send({"op": "pdb", "msg": msg})

    # ------------------------------------------------------------ the loop
    def loop(self):
        if self.interactive:
            self.rl = self.setup_readline()
        hits = []
        old = signal.signal(signal.SIGINT, lambda *a: hits.append(1))
        try:
            while True:
                if hits:  # Ctrl-C while the program runs: break in where it is
                    hits.clear()
                    self.remote.send({"op": "break"})
                ev = self.remote.next(0.1)
                if ev is None:
                    continue
                kind = ev.get("event")
                if kind == "pdb" and isinstance(ev.get("msg"), dict):
                    signal.signal(signal.SIGINT, old)
                    try:
                        self.process(ev["msg"])
                    finally:
                        signal.signal(signal.SIGINT, lambda *a: hits.append(1))
                elif kind == "pdb-detached":
                    self.detached = True
                    self.remote.send({"op": "stop", "why": "detached"})
        finally:
            signal.signal(signal.SIGINT, old)
            save_history(self.rl)

    def process(self, msg: dict):
        if "command_list" in msg and isinstance(msg["command_list"], list):
            self.commands = {c for c in msg["command_list"] if isinstance(c, str)}
        elif isinstance(msg.get("message"), str):
            text = msg["message"][:MAX_MESSAGE]
            if msg.get("type") == "error":
                self.term.write("stdout", "*** " + text + "\n")
            else:
                self.term.write("stdout", text)
        elif isinstance(msg.get("help"), str):
            self.help(msg["help"])
        elif isinstance(msg.get("prompt"), str):
            state = msg.get("state")
            self.state = state if state in ("pdb", "interact") else "dumb"
            self.prompt(safe(msg["prompt"], 80))

    def help(self, arg: str):
        import pdb  # the CLI's own pdb: its help texts (its version's)

        p = pdb.Pdb(stdout=sys.stdout)
        try:
            p.do_help(arg)
        except Exception:
            self.term.write("stdout", f"*** no help for {safe(arg, 80)}\n")

    def prompt(self, prompt: str):
        try:
            payload = {"reply": self.read_command(prompt)}
        except EOFError:
            payload = {"signal": "EOF"}
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            payload = {"signal": "INT"}
        self.send(**payload)

    def read(self, prompt: str, multiline: bool) -> str:
        self.multiline = multiline
        if self.interactive:
            return input(prompt)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def read_command(self, prompt: str) -> str:
        """One reply; Python blocks span lines (codeop decides, as pdb's client does)."""
        reply = self.read(prompt, False)
        if self.state == "dumb":
            return reply
        prefix = ""
        if self.state == "pdb":
            line = reply.strip()
            i = 0
            while i < len(line) and (line[i].isalnum() or line[i] == "_"):
                i += 1
            cmd = "help" if line.startswith("?") else line[:i]
            if not line or cmd in self.commands:
                return reply
            if reply.startswith("!"):
                prefix, reply = "!", reply[1:].lstrip()
        try:
            if codeop.compile_command(reply + "\n", "<stdin>", "single") is not None:
                return prefix + reply
            more = "...".ljust(len(prompt))
            while codeop.compile_command(reply, "<stdin>", "single") is None:
                reply += "\n" + self.read(more, True)
        except (SyntaxError, ValueError, OverflowError):
            pass  # the server reports it, with the target's own compiler
        return prefix + reply

    # ------------------------------------------------------------ completion
    def setup_readline(self):
        try:
            import readline
        except ImportError:
            return None
        readline.set_completer(self.complete)
        readline.set_completer_delims(" \t\n`@#%^&*()=+[{]}\\|;:'\",<>?")
        readline.parse_and_bind("bind ^I rl_complete" if "libedit" in (readline.__doc__ or "")
                                else "tab: complete")
        path = history_path("pdb_history")
        try:
            readline.read_history_file(path)
        except OSError:
            pass
        return readline, path

    def complete(self, text, state):
        import readline

        if state == 0:
            self.matches = []
            if self.state not in ("pdb", "interact"):
                return None
            orig = readline.get_line_buffer()
            line = orig.lstrip()
            if self.multiline:
                line = "! " + line
            off = len(orig) - len(line)
            self.send(complete={"text": text, "line": line,
                                "begidx": readline.get_begidx() - off,
                                "endidx": readline.get_endidx() - off})
            try:
                while True:
                    ev = self.remote.next(3.0)
                    if ev is None:
                        break
                    msg = ev.get("msg") if ev.get("event") == "pdb" else None
                    if isinstance(msg, dict) and isinstance(msg.get("completions"), list):
                        self.matches = [m for m in msg["completions"][:500]
                                        if isinstance(m, str) and m.isprintable()]
                        break
            except (Ended, WandError):
                return None
        return self.matches[state] if state < len(self.matches) else None


@click.command("pdb")
@click.argument("target")
@click.option("--thread", "thread", default="main", show_default=True,
              help="Thread to break into: its name, ident or native id (TID).")
@click.option("--ack-timeout", type=float, default=5.0, show_default=True,
              help="Seconds for the target's main thread to pick up the injection.")
@click.option("--raw", is_flag=True, help="Pass the target's text to the terminal as it is.")
@click.option("-q", "--quiet", is_flag=True, help="No banner or progress lines on stderr.")
@target_options
@kube_options
def command(target, thread, ack_timeout, raw, quiet, pid, topts):
    """CPython's own pdb, remotely, inside a live process (Python 3.14).

    \b
    Breaks into the main thread (or --thread) where it is: `w`, `p EXPR`, `b FILE:LINE`,
    `c`, `n`, `s`, `interact` … as in pdb. Ctrl-C while the program runs breaks in again.
    `q` or Ctrl-D at the prompt detaches: the process runs on with no breakpoints left.
    """
    interactive = is_tty()
    box, session = reach(target, topts, pid, quiet)
    remote = Remote(session, "pdb")
    term = Terminal(raw)
    client = PdbClient(remote, term, interactive)
    try:
        hello = remote.start("pdbserver", {"thread": thread}, "pdb-attached", ack_timeout)
        if not quiet:
            status(f"pdb attached to thread {safe(hello.get('thread'), 80)} of PID "
                   f"{session.pid} in {box.display}; `q` or Ctrl-D detaches")
        client.loop()
    except Ended as e:
        why = e.args[0].get("why")
        if not quiet:
            status(f"detached from PID {session.pid}" if client.detached or why == "detached"
                   else f"the pdb session ended ({safe(why, 40)})")
    finally:
        with no_interrupts():  # the cleanup in the target is not to be cut short
            remote.stop("bye")
            term.flush()
            session.close()
