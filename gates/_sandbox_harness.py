"""Runs inside the sandbox: confine this process, run the program in a worker thread, report how it ended.

`gates.sandbox` compiles this file and `_sandbox_runner.py` once, copies both into the run's folder
and starts the harness as

    python -s -P -B harness.pyc SOURCE RUNNER VERDICT_FD DETAILS_FD LAYERS

in a fresh interpreter (under `unshare -rnm` when the host allows it). LAYERS is a comma-separated
subset of:

- `filesystem`: a private root made of read-only bind mounts of the system and Python folders, a
  small tmpfs as the program's folder (the only writable place), no /proc, /sys, /tmp, /home or
  /root; then a nested user namespace, so the program cannot undo the mounts;
- `processes`: a seccomp filter: no child processes (fork, vfork, clone without CLONE_THREAD,
  clone3), no ptrace or reading other processes' memory, signals only to itself, and no way to have
  the kernel signal anyone else for it (fcntl F_SETOWN/F_SETSIG, ioctl FIOSETOWN/SIOCSPGRP, io_uring);
- `guard`: an audit hook that refuses network use, process creation, native code (ctypes), tracing,
  other threads' frames, the harness's own frames, signal routing and file access outside the
  program's folder and Python's own folders with `SandboxViolation` (a PermissionError), and records
  each refusal; in-process, so best effort: the kernel layers are what contain a determined program;
- `probe`: apply what works, report which layers took effect, and never fail closed.

Without `probe`, a layer that cannot be applied stops the run before the program starts (exit code
SETUP_FAILED, and a `setup_failed` report): the sandbox never claims a protection it did not get.

How a run ends is told on two channels, pipes the evaluator reads:
- VERDICT_FD carries one thing, `FINISHED`, and only this process's main thread can write it. The
  program runs in a worker thread that first takes a file descriptor table of its own
  (unshare(CLONE_FILES)) and closes VERDICT_FD there, so no syscall of the program or of any thread
  it starts can reach that pipe: the kernel enforces it, with or without the guard. The main thread
  writes `FINISHED` when a lock is released, and only the worker's chain of C calls releases it,
  after `_sandbox_runner.run` returned, which it does only when the program's code did. Between
  starting the worker and exiting, the main thread runs no Python code of its own (a chain of C
  calls), so none of the program's code (a finalizer, a signal handler) runs on it.
- DETAILS_FD carries everything else, as Python literals on lines: the refusals as they happen (so a
  run that then hangs or crashes still reports them), an error's type, message and line, a setup
  failure, the probe's answer. The program can write there too, so nothing on it can make a run pass.
stdout and stderr stay the program's.

Stdlib only, and only `os` and `sys` at start-up (ctypes when a kernel layer is asked for): this
runs once per sandboxed program, hundreds of times per cycle.
"""

import os
import sys


def _private_builtins():
    """A copy of the builtins for this module's code: functions take their builtins when defined, and
    the program can replace names in the real builtins module (builtins.len = ...), not in this copy."""
    real = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
    return dict(real)


REAL_BUILTINS = sys.modules["builtins"]  # what the runner and the program get
__builtins__ = _private_builtins()

SETUP_FAILED = 97
FINISHED = b"finished\n"  # all the verdict channel ever carries
SCRATCH_SIZE = "64m"  # the program's folder under `filesystem`: a tmpfs of this size
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
SYSTEM_FILES = ("/etc/ld.so.cache",)
MAX_VIOLATIONS = 20


class SandboxViolation(PermissionError):
    """The sandbox refused an operation (network, new process, native code, a file outside the sandbox)."""


class SetupError(Exception):
    """A requested protection could not be applied."""


# ---- filesystem: a private read-only root with a small writable folder --------------------------

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_NOATIME, MS_NODIRATIME = 32, 4096, 1024, 2048
MNT_DETACH = 2
CLONE_NEWUSER = 0x10000000
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}


def python_dirs():
    """The folders this interpreter and its packages live in (read-only in the sandbox)."""
    found = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
    }
    return sorted(os.path.realpath(d) for d in found if d and os.path.realpath(d) != "/")


def read_roots(folder):
    """Where the program may read: its folder, the system's and Python's folders, a few devices."""
    return tuple(sorted(set(SYSTEM_DIRS) | set(python_dirs()) | {folder}))


def confine_filesystem(folder, source):
    """Pivot into a new root: read-only binds of the system and Python, a tmpfs at `folder`."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    machine = os.uname().machine
    if machine not in PIVOT_ROOT:
        raise SetupError(f"no pivot_root syscall number for {machine}")
    if not in_new_user_namespace():
        raise SetupError("not in a new user namespace (run under unshare -rnm); refusing to touch the host's mounts")

    def mount(source, target, fstype, flags, data=None):
        if libc.mount(_c(source), _c(target), _c(fstype), ctypes.c_ulong(flags), _c(data)) != 0:
            raise SetupError(f"mount {target}: {os.strerror(ctypes.get_errno())}")

    new_root = os.path.join(folder, ".root")
    os.mkdir(new_root)
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,nr_inodes=512,mode=755")
    for path in sorted(set(SYSTEM_DIRS) | set(python_dirs())):
        _expose(mount, path, new_root + path, read_only=True)
    for path in SYSTEM_FILES + DEVICES:
        _expose(mount, path, new_root + path, read_only=path in SYSTEM_FILES)
    os.makedirs(new_root + folder, exist_ok=True)
    mount("tmpfs", new_root + folder, "tmpfs", MS_NOSUID | MS_NODEV, f"size={SCRATCH_SIZE},mode=700")
    with open(os.path.join(new_root + folder, "solution.py"), "wb") as handle:
        handle.write(source)
    os.chdir(new_root)
    if libc.syscall(PIVOT_ROOT[machine], b".", b".") != 0:
        raise SetupError(f"pivot_root: {os.strerror(ctypes.get_errno())}")
    if libc.umount2(b".", MNT_DETACH) != 0:
        raise SetupError(f"detaching the old root: {os.strerror(ctypes.get_errno())}")
    os.chdir("/")
    mount("none", "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(folder)
    # A nested user namespace: the mounts belong to the outer one, so nothing here can undo them.
    if libc.unshare(CLONE_NEWUSER) != 0:
        raise SetupError(f"locking the mounts: {os.strerror(ctypes.get_errno())}")


def in_new_user_namespace():
    """True unless this process sees the initial user namespace's full uid map ("0 0 4294967295"),
    so mounts made here can only change a namespace of our own."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as handle:
            return handle.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _expose(mount, path, target, read_only):
    """Bind `path` at `target` (read-only if asked); recreate top-level symlinks such as /bin -> usr/bin."""
    if os.path.islink(path) and os.path.dirname(path) == "/":
        os.symlink(os.readlink(path), target)
        return
    if not os.path.exists(path):
        return
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "wb").close()
    mount(path, target, None, MS_BIND)
    if read_only:
        mount("none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(path))


def _locked_flags(path):
    """Mount flags a user namespace may not drop when it remounts a bind of `path`."""
    flags = os.statvfs(path).f_flag
    pairs = (
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
    )
    return sum(ms for st, ms in pairs if flags & st)


def _c(text):
    """A str argument for libc, or NULL."""
    return None if text is None else text.encode()


# ---- processes: a seccomp filter --------------------------------------------------------------

# (audit arch, syscall numbers) per machine; `fork`/`vfork` do not exist on aarch64. "deny": fork, vfork,
# tkill, ptrace, process_vm_readv/writev, pidfd_open/send_signal/getfd, io_uring_setup/enter/register.
SYSCALLS = {
    "x86_64": (
        0xC000003E,
        {
            "clone": 56,
            "clone3": 435,
            "kill": 62,
            "rt_sigqueueinfo": 129,
            "tgkill": 234,
            "rt_tgsigqueueinfo": 297,
            "fcntl": 72,
            "ioctl": 16,
            "deny": (57, 58, 200, 101, 310, 311, 434, 424, 438, 425, 426, 427),
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220,
            "clone3": 435,
            "kill": 129,
            "rt_sigqueueinfo": 138,
            "tgkill": 131,
            "rt_tgsigqueueinfo": 240,
            "fcntl": 25,
            "ioctl": 29,
            "deny": (130, 117, 270, 271, 434, 424, 438, 425, 426, 427),
        },
    ),
}
# Commands that make the kernel send signals to a process the caller names (SIGIO/SIGURG or any
# signal chosen with F_SETSIG): fcntl F_SETOWN, F_SETSIG, F_SETOWN_EX; ioctl FIOSETOWN, SIOCSPGRP,
# TIOCSPGRP. Their owner could be the evaluator (getppid()), which a SIGKILL would end.
SIGNAL_ROUTING = {"fcntl": (8, 10, 15), "ioctl": (0x8901, 0x8902, 0x5410)}
X32_BIT = 0x40000000
CLONE_THREAD = 0x00010000
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
LD_W_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2


def seccomp_program(machine, own_pid):
    """The BPF filter as (code, jt, jf, k) tuples: threads yes, child processes no, ptrace no,
    signals only to this process (kill, tgkill) or its own group (kill 0), no signal routing."""
    arch, nr = SYSCALLS[machine]
    body = [("ld", 4), ("jeq", arch, None, "deny"), ("ld", 0)]
    if machine == "x86_64":
        body.append(("jge", X32_BIT, "deny", None))
    body += [("jeq", nr["clone3"], "enosys", None), ("jeq", nr["clone"], "clone", None)]
    body += [("jeq", nr[name], "self_or_group", None) for name in ("kill", "rt_sigqueueinfo")]
    body += [("jeq", nr[name], "self", None) for name in ("tgkill", "rt_tgsigqueueinfo")]
    body += [("jeq", nr[name], name, None) for name in SIGNAL_ROUTING]
    body += [("jeq", number, "deny", None) for number in nr["deny"]]
    body += [("ret", RET_ALLOW), "clone", ("ld", 16), ("jset", CLONE_THREAD, "allow", "deny")]
    for name, commands in SIGNAL_ROUTING.items():  # the command is the second argument (low 32 bits)
        body += [name, ("ld", 24)] + [("jeq", command, "deny", None) for command in commands] + [("ret", RET_ALLOW)]
    body += [
        "self_or_group",
        ("ld", 16),
        ("jeq", 0, "allow", None),
        "self",
        ("ld", 16),
        ("jeq", own_pid, "allow", "deny"),
        "allow",
        ("ret", RET_ALLOW),
        "deny",
        ("ret", RET_ERRNO | EPERM),
        "enosys",
        ("ret", RET_ERRNO | ENOSYS),
    ]
    return _assemble(body)


def _assemble(body):
    """Resolve labels (strings in `body`) into BPF's relative jump offsets."""
    labels, index = {}, 0
    for item in body:
        if isinstance(item, str):
            labels[item] = index
        else:
            index += 1
    program = []
    for item in body:
        if isinstance(item, str):
            continue
        here = len(program) + 1

        def offset(label, here=here):
            return 0 if label is None else labels[label] - here

        op = item[0]
        if op == "ld":
            program.append((LD_W_ABS, 0, 0, item[1]))
        elif op == "ret":
            program.append((RET, 0, 0, item[1]))
        else:
            code = {"jeq": JEQ, "jge": JGE, "jset": JSET}[op]
            program.append((code, offset(item[2]), offset(item[3]), item[1] & 0xFFFFFFFF))
    return program


def confine_processes():
    """Install the seccomp filter (after no_new_privs, which it needs); it lasts for this process."""
    import ctypes

    machine = os.uname().machine
    if machine not in SYSCALLS:
        raise SetupError(f"no seccomp syscall table for {machine}")

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    instructions = seccomp_program(machine, os.getpid())
    filters = (Filter * len(instructions))(*[Filter(*i) for i in instructions])
    program = Program(len(instructions), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SetupError(f"no_new_privs: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        raise SetupError(f"seccomp: {os.strerror(ctypes.get_errno())}")


# ---- guard: an audit hook that refuses and records ---------------------------------------------

NETWORK_EVENTS = (
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
)
SOCKET_OBJECT_EVENTS = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg")  # (socket, address)
PROCESS_EVENTS = (
    "os.fork",
    "os.forkpty",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "subprocess.Popen",
    "os.killpg",
    "resource.setrlimit",
    "resource.prlimit",
)
NATIVE_EVENTS = (
    "ctypes.dlopen",
    "ctypes.dlsym",
    "ctypes.dlsym/handle",
    "ctypes.call_function",
    "ctypes.cdata",
    "ctypes.cdata/buffer",
    "ctypes.addressof",
    "ctypes.string_at",
    "ctypes.wstring_at",
    "gc.get_objects",
    "gc.get_referrers",
    "gc.get_referents",
)
# Tracing can rewrite a running frame's locals and jump over its lines; other threads' frames are the
# harness's main thread's.
INTERNALS_EVENTS = (
    "sys.settrace",
    "sys.setprofile",
    "sys._current_frames",
    "sys._current_exceptions",
    "sys.monitoring.register_callback",
)
FRAME_ATTRIBUTES = ("tb_frame", "gi_frame", "cr_frame", "ag_frame")  # audited as object.__getattr__
WRITE_EVENTS = (
    "os.remove",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.utime",
    "os.mkfifo",
    "os.mknod",
    "os.setxattr",
    "os.removexattr",
    "os.chflags",
)
WRITE_TARGET_EVENTS = ("os.rename", "os.symlink", "os.link")  # the second argument is where it writes
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
HARNESS_FILE = "harness.py"  # the file name this module's code objects carry (gates.sandbox compiles it so)


class Guard:
    """The audit hook: refuses what the sandbox forbids, with a message that says so.

    It never runs the program's code, which could otherwise walk `f_back` from its own frame into the
    hook's and switch the guard off: an event's arguments can be any object (the program can raise
    events itself with sys.audit), so the rules look only at exact str, bytes and int, show anything
    else by its type's name, call only C functions captured before the program ran, and look names
    up in this module's private builtins (see `_private_builtins`).
    """

    def __init__(self, folder, protected, details_fd, files_contained):
        self.readable = _prefixes(read_roots(folder))
        self.writable = _prefixes((folder,))
        self.protected = frozenset(protected)  # the harness's own files: never written by the program
        self.details_fd = details_fd
        self.files_contained = files_contained  # the kernel confines files too (the filesystem layer)
        self.violations = []
        self.inside = None  # the thread in which the guard is reading a frame (which raises events itself)
        # one dict lookup per audit event: most events (import, exec, compile, ...) are not ours
        self.rules = {
            "open": lambda args: self._open(*args[:3]),
            "os.kill": _signal,
            "os.listdir": lambda args: self._read(args[0] if args else None),
            "sys._getframe": lambda args: self._frame(args[0] if args else None),
            "object.__getattr__": self._attribute,
            "fcntl.fcntl": _routing("fcntl"),
            "fcntl.ioctl": _routing("ioctl"),
        }
        self.rules["os.scandir"] = self.rules["os.listdir"]
        self.rules.update((event, _network(event)) for event in NETWORK_EVENTS)
        self.rules.update((event, _fixed(f"starting or controlling processes ({event})")) for event in PROCESS_EVENTS)
        self.rules.update((event, _fixed(f"native code or interpreter internals ({event})")) for event in NATIVE_EVENTS)
        self.rules.update((event, _fixed(f"tracing or other threads' frames ({event})")) for event in INTERNALS_EVENTS)
        self.rules.update((event, lambda args: self._write(args[0])) for event in WRITE_EVENTS)
        self.rules.update(
            (event, lambda args: self._write(args[1] if len(args) > 1 else None)) for event in WRITE_TARGET_EVENTS
        )

    def __call__(self, event, args):
        if self.inside == _get_ident():
            return
        rule = self.rules.get(event)
        problem = rule(args) if rule is not None else None
        if problem is not None:
            if len(self.violations) < MAX_VIOLATIONS:
                self.violations.append(problem)
                # recorded as it happens, so a run that then times out or crashes still reports it
                send(self.details_fd, {"status": "running", "violations": self.violations})
            raise _new_exception(SandboxViolation, f"blocked by the sandbox: {problem}")

    def _open(self, path, mode=None, flags=None):
        if type(path) is int:
            return None
        writing = (type(mode) is str and any(c in mode for c in "wax+")) or (
            type(flags) is int and bool(flags & WRITE_FLAGS)
        )
        return self._write(path) if writing else self._read(path)

    def _read(self, path):
        where = self._resolve(path)
        if where is None or where in DEVICES or _under(where, self.readable):
            return None
        return f"reading {where} (outside the sandbox)"

    def _write(self, path):
        where = self._resolve(path)
        if where is None or where == "/dev/null":
            return None
        if where in self.protected or not _under(where, self.writable):
            return f"writing {where} (outside the sandbox folder)"
        return None

    def _resolve(self, path):
        """The absolute path an operation touches; symlinks resolved where the program can make them.
        A path given as an object (pathlib) is not converted here, as that runs Python code of its
        class: under the filesystem layer the kernel has the last word anyway; without it, refused."""
        if path is None:
            path = "."
        if type(path) is bytes:
            path = path.decode(FS_ENCODING, "surrogateescape")
        if type(path) is not str:
            return None if self.files_contained else f"<a path given as a {_type_name(path)} object; pass a str>"
        where = _normpath(path if path.startswith("/") else _getcwd() + "/" + path)
        return _realpath(where) if _under(where, self.writable) else where

    def _attribute(self, args):
        """object.__getattr__: a frame reached from a traceback, generator or coroutine."""
        if len(args) != 2 or type(args[1]) is not str or args[1] not in FRAME_ATTRIBUTES:
            return None
        if not _one_of(type(args[0]), FRAME_HOLDERS):
            return None  # raised by hand (sys.audit): no frame is handed out
        self.inside = _get_ident()
        try:
            frame = getattr(args[0], args[1])
        finally:
            self.inside = None
        return self._frame(frame)

    def _frame(self, frame):
        """Refuse frames of the harness's own code (the guard's, when it raised): their globals hold it."""
        if type(frame) is not FRAME_TYPE:
            return None
        self.inside = _get_ident()
        try:
            harness = frame.f_code.co_filename == HARNESS_FILE
        finally:
            self.inside = None
        return "the sandbox's own frames (sys._getframe, tracebacks)" if harness else None


def _frame_holders():
    """The types whose frame attributes are audited: traceback, generator, coroutine, async generator."""
    try:
        raise ValueError
    except ValueError as exc:
        traceback = type(exc.__traceback__)

    def generator():
        yield

    async def coroutine():
        pass

    async def async_generator():
        yield

    started = coroutine()
    holders = (traceback, type(generator()), type(started), type(async_generator()))
    started.close()
    return holders


FRAME_HOLDERS = _frame_holders()
FRAME_TYPE = type(sys._getframe())
FS_ENCODING = sys.getfilesystemencoding()
_new_exception = PermissionError.__new__  # makes the exception without calling an __init__ the program could set
_get_ident = __import__("_thread").get_ident
_getcwd, _lstat, _readlink, _getpid, _write_fd = os.getcwd, os.lstat, os.readlink, os.getpid, os.write
S_IFMT, S_IFLNK = 0o170000, 0o120000


def _normpath(path):
    """An absolute path without '.', '..' or repeated slashes (posixpath.normpath, in this module)."""
    parts = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def _realpath(path, hops=40):
    """`path` with every symlink resolved (posixpath.realpath, in this module); unresolvable parts kept."""
    parts, resolved = path.split("/")[1:], ""
    while parts:
        part = parts.pop(0)
        candidate = _normpath(resolved + "/" + part)
        try:
            is_link = (_lstat(candidate).st_mode & S_IFMT) == S_IFLNK
            target = _readlink(candidate) if is_link and hops > 0 else None
        except OSError:
            target = None
        if target is None:
            resolved = candidate
            continue
        hops -= 1
        base = "" if target.startswith("/") else resolved
        parts = (base + "/" + target).split("/")[1:] + parts
        resolved = ""
    return resolved or "/"


PLAIN = (str, bytes, int, float, bool)


def _one_of(cls, classes):
    """`cls in classes` by identity: `in` would call `==`, which a metaclass of the program's can define."""
    for candidate in classes:
        if cls is candidate:
            return True
    return False


def _type_name(value):
    """A class's name without asking the class (a metaclass of the program's could answer)."""
    name = type.__dict__["__name__"].__get__(type(value))
    return name if type(name) is str else "object"


def _network(event):
    shown = 1 if event in SOCKET_OBJECT_EVENTS else 0
    return lambda args: f"network access ({event} {_shown(args[shown] if len(args) > shown else None)})"


def _fixed(problem):
    return lambda args: problem


def _signal(args):
    pid = args[0] if args else None
    if type(pid) is int and pid in (0, _getpid()):
        return None
    return f"signalling another process (os.kill {_shown(pid)})"


def _routing(call):
    """fcntl/ioctl commands that would have the kernel signal a process the program names."""
    commands = SIGNAL_ROUTING[call]

    def rule(args):
        command = args[1] if len(args) > 1 else None
        if type(command) is int and (command & 0xFFFFFFFF) not in commands:
            return None
        return f"routing signals to another process ({call} command {_shown(command)})"

    return rule


def _prefixes(roots):
    """Folders as (the folders, their prefixes) for `_under`, which runs on every file the program opens."""
    return frozenset(roots), tuple(root + "/" for root in roots)


def _under(path, prefixes):
    """Whether `path` is one of the folders of `_prefixes(...)` or inside one."""
    exact, inside = prefixes
    return path in exact or path.startswith(inside)


def _shown(value):
    """repr of plain values only; anything else by its type's name (its own __repr__ is the program's)."""
    if value is None or _one_of(type(value), PLAIN):
        text = repr(value)
    elif type(value) is tuple and all(_one_of(type(v), PLAIN) for v in value):
        text = repr(value)
    else:
        text = f"<{_type_name(value)} object>"
    return text if len(text) <= 120 else text[:117] + "..."


def keep_python_paths(roots):
    """Drop import paths outside the readable roots (e.g. an editable install of the parent's project)."""
    readable = _prefixes(roots)
    sys.path[:] = [p for p in sys.path if _under(os.path.realpath(p or "."), readable)]
    sys.path_importer_cache.clear()


# ---- run and report -------------------------------------------------------------------------

CLONE_FILES = 0x400


def _one_line(text, limit=300):
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def send(fd, message):
    """Write one message (a Python literal on one line) to a channel; never raises."""
    try:
        data = (repr(message) + "\n").encode("utf-8", "backslashreplace")
        while data:
            data = data[_write_fd(fd, data) :]
    except BaseException:
        pass


def apply_layers(layers, folder, source, probe):
    """Apply the requested layers in order; returns those applied (raises SetupError unless probing)."""
    applied = []
    steps = (("filesystem", lambda: confine_filesystem(folder, source)), ("processes", confine_processes))
    for name, step in steps:
        if name not in layers:
            continue
        try:
            step()
            applied.append(name)
        except Exception as exc:
            if not probe:
                raise SetupError(f"{name}: {exc}") from exc
    return applied


def own_descriptor_table(verdict_fd):
    """In the worker thread: a file descriptor table of its own, without the verdict channel."""
    unshare = getattr(os, "unshare", None)  # Python 3.12+
    if unshare is not None:
        unshare(CLONE_FILES)
    else:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_FILES) != 0:
            raise SetupError(f"unshare(CLONE_FILES): {os.strerror(ctypes.get_errno())}")
    os.close(verdict_fd)


def confine_worker(verdict_fd, details_fd, guard):
    """The worker thread's first step, before the program: lose the verdict channel, then the guard."""
    try:
        own_descriptor_table(verdict_fd)
    except Exception as exc:
        send(details_fd, {"status": "setup_failed", "message": _one_line(f"worker: {exc}")})
        os._exit(SETUP_FAILED)
    if guard is not None:
        sys.addaudithook(guard)


def drop_unaudited_signal_calls():
    """Without the processes layer: remove pidfd_open and pidfd_send_signal, which Python does not audit
    (so the guard cannot refuse them). Best effort: a program that rebuilds the posix module gets them
    back; only seccomp denies them for certain."""
    for module, name in (
        ("posix", "pidfd_open"),
        ("os", "pidfd_open"),
        ("_signal", "pidfd_send_signal"),
        ("signal", "pidfd_send_signal"),
    ):
        vars(__import__(module)).pop(name, None)


def load_runner(code_bytes):
    """`_sandbox_runner`'s functions, in a namespace of their own (see that module)."""
    import marshal

    namespace = {"__name__": "ratchet_runner", "__builtins__": REAL_BUILTINS}
    exec(marshal.loads(code_bytes[16:]), namespace)
    return namespace


def run_in_worker(source, runner, verdict_fd, details_fd, guard):
    """Run the program in a worker thread; write FINISHED on the verdict channel only if it finished.

    Everything after the worker starts is one chain of C calls on this thread (see the module doc)."""
    import _thread
    import operator
    import signal
    from functools import partial

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # _thread.interrupt_main() must not interrupt this thread
    finished = _thread.allocate_lock()
    finished.acquire()
    module = type(sys)("__main__")
    module.__file__ = "solution.py"
    sys.modules["__main__"] = module
    report = partial(runner["report_error"], details_fd, SandboxViolation, guard.violations if guard else [])
    worker = [
        partial(confine_worker, verdict_fd, details_fd, guard),
        partial(runner["run"], source, module.__dict__, os._exit, report),
        finished.release,
    ]
    steps = [
        partial(_thread.start_new_thread, list, (map(operator.call, worker),)),
        finished.acquire,
        partial(os.write, verdict_fd, FINISHED),
        partial(os._exit, 0),
    ]
    list(map(operator.call, steps))


def main(source_path, runner_path, verdict_fd, details_fd, layers):
    """Confine, then run solution.py as __main__ in a worker thread; see the module doc."""
    with open(source_path, "rb") as handle:
        source = handle.read()
    with open(runner_path, "rb") as handle:
        runner = load_runner(handle.read())
    folder = os.getcwd()
    probe = "probe" in layers
    try:
        applied = apply_layers(layers, folder, source, probe)
    except SetupError as exc:
        send(details_fd, {"status": "setup_failed", "message": _one_line(str(exc))})
        os._exit(SETUP_FAILED)
    if probe:
        send(details_fd, {"status": "probe", "applied": applied})
        os._exit(0)
    guard = None
    if "guard" in layers:
        keep_python_paths(read_roots(folder))
        protected = {os.path.realpath(p) for p in (source_path, runner_path, sys.argv[0])}
        guard = Guard(folder, protected, details_fd, files_contained="filesystem" in applied)
        if "processes" not in applied:
            drop_unaudited_signal_calls()
    run_in_worker(source, runner, verdict_fd, details_fd, guard)


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
        frozenset(filter(None, sys.argv[5].split(","))) if sys.argv[5:] else frozenset(),
    )
