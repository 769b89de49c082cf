"""Errors the user sees: what happened, a hint for what to do, an exit status, a code."""

import enum


class WandError(Exception):
    """A failure with a message and a remedy; exit status 1 unless said otherwise."""

    exit_code = 1

    def __init__(self, message, hint=None, *, code=None, exit_code=None, detail=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.detail = detail
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(WandError):
    """Bad input from the user (exit status 2)."""

    exit_code = 2


class Code(str, enum.Enum):
    """Every error code the CLI, the injector and the agent use (`-o json` and `--json` carry
    them; tests check that no other code is ever raised). A str: compares equal to its text."""

    AMBIGUOUS = "ambiguous"
    AMBIGUOUS_FILE = "ambiguous-file"
    BAD_EXPRESSION = "bad-expression"
    BAD_OP = "bad-op"
    BAD_PROFILE = "bad-profile"
    BAD_SCRIPT = "bad-script"
    BLOCKED = "blocked"
    BUSY = "busy"
    CLUSTER = "cluster"
    CONTAINER_PROCESS = "container-process"
    CONTEXT = "context"
    DEMO = "demo"
    DETACH_FAILED = "detach-failed"
    DETACHED = "detached"
    ENGINE = "engine"
    EXITED = "exited"
    HELPER = "helper"
    HELPER_IMAGE = "helper-image"
    IMAGE_PULL = "image-pull"
    INJECT_FAILED = "inject-failed"
    INJECTOR_EXITED = "injector-exited"
    INJECTOR_FAILED = "injector-failed"
    INTERNAL = "internal"
    INTERRUPTED = "interrupted"
    INTERPRETER_MISMATCH = "interpreter-mismatch"
    INTERPRETER_UNREACHABLE = "interpreter-unreachable"
    KIND = "kind"
    KUBECTL = "kubectl"
    KUBECTL_OLD = "kubectl-old"
    LAUNCH_JSON = "launch-json"
    LEFT_RUNNING = "left-running"
    LISTEN_FAILED = "listen-failed"
    LISTER_ONLY = "lister-only"
    LOCAL_PORT = "local-port"
    LOCAL_PORT_BUSY = "local-port-busy"
    LOGLEVEL_FAILED = "loglevel-failed"
    NETNS = "netns"
    NO_ASYNCIO = "no-asyncio"
    NO_CODE_AT_LINE = "no-code-at-line"
    NO_DEBUGPY = "no-debugpy"
    NO_END = "no-end"
    NO_EPHEMERAL = "no-ephemeral"
    NO_FILE = "no-file"
    NO_MATCHING_PYTHON = "no-matching-python"
    NO_PODS = "no-pods"
    NO_PYTHON = "no-python"
    NO_READY_PODS = "no-ready-pods"
    NO_RESULT = "no-result"
    NO_STAGING = "no-staging"
    NO_START = "no-start"
    NO_SUCH_PROCESS = "no-such-process"
    NO_TOOL = "no-tool"
    NO_TOOL_ID = "no-tool-id"
    NOT_ATTACHABLE = "not-attachable"
    NOT_FOUND = "not-found"
    NOT_INJECTABLE = "not-injectable"
    NOT_PYTHON = "not-python"
    NOT_RUNNING = "not-running"
    OUTPUT_FLOOD = "output-flood"
    PDB_FAILED = "pdb-failed"
    PERMISSION = "permission"
    POD_SECURITY = "pod-security"
    PORT_BUSY = "port-busy"
    PROFILE_FAILED = "profile-failed"
    RBAC = "rbac"
    REMOTE_DEBUG_DISABLED = "remote-debug-disabled"
    SHELL_FAILED = "shell-failed"
    STAGING = "staging"
    STATE_MISMATCH = "state-mismatch"
    STOPPED = "stopped"
    SYNTAX = "syntax"
    TARGET_EXITED = "target-exited"
    TIMEOUT = "timeout"
    TOO_LARGE = "too-large"
    TOO_MANY_EVENTS = "too-many-events"
    TOOL_FAILED = "tool-failed"
    TRACE_FAILED = "trace-failed"
    UNTRUSTED_PYTHON = "untrusted-python"
    USAGE = "usage"
    VERSION = "version"
    WOULD_KILL = "would-kill"
    WRITE_FAILED = "write-failed"
    ZOMBIE = "zombie"
