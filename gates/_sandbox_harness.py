"""Runs inside the sandbox: confine this process, then run the program and write its verdict.

`gates.sandbox` compiles this file once, copies the bytecode into the run's folder and starts it as

    python -s -P -B harness.pyc SOURCE RESULT LAYERS

in a fresh interpreter (under `unshare -rnm` when the host allows it). LAYERS is a comma-separated
subset of:

- `filesystem`: a private root made of read-only bind mounts of the system and Python folders, a
  small tmpfs as the program's folder (the only writable place), no /proc, /sys, /tmp, /home or
  /root; then a nested user namespace, so the program cannot undo the mounts;
- `processes`: a seccomp filter: no child processes (fork, vfork, clone without CLONE_THREAD,
  clone3), no ptrace or reading other processes' memory, signals only to itself;
- `guard`: an audit hook that refuses network use, process creation, native code (ctypes) and file
  access outside the program's folder and Python's own folders with `SandboxViolation` (a
  PermissionError), and records each refusal for the verdict; in-process, so best effort: the
  kernel layers above are what contain a determined program;
- `probe`: apply what works, report which layers took effect, and never fail closed.

Without `probe`, a layer that cannot be applied stops the run before the program starts (exit code
SETUP_FAILED, and a `setup_failed` verdict): the sandbox never claims a protection it did not get.

The verdict is a Python literal (dict of str, int, None and lists) written through a file opened
before the program starts (under `filesystem` the program's root does not even hold that file): once
at the end, and after each refusal, so that a run that then hangs or crashes still reports what was
refused. stdout stays the program's.

Stdlib only, and only `os` and `sys` at start-up (ctypes when a kernel layer is asked for): this
runs once per sandboxed program, hundreds of times per cycle.
"""

import os
import sys

SETUP_FAILED = 97
SCRATCH_SIZE = "64m"  # the program's folder under `filesystem`: a tmpfs of this size
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
SYSTEM_FILES = ("/etc/ld.so.cache",)
MAX_VIOLATIONS = 20

_reserve = bytearray(1 << 20)


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
    found = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
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
        raise SetupError("not in a new user namespace (run under unshare -rnm); refusing to touch the host's "
                         "mounts")

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
    pairs = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
             (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME))
    return sum(ms for st, ms in pairs if flags & st)


def _c(text):
    """A str argument for libc, or NULL."""
    return None if text is None else text.encode()


# ---- processes: a seccomp filter --------------------------------------------------------------

# (audit arch, syscall numbers) per machine; `fork`/`vfork` do not exist on aarch64.
SYSCALLS = {
    "x86_64": (0xC000003E, {"clone": 56, "clone3": 435, "kill": 62, "rt_sigqueueinfo": 129, "tgkill": 234,
                            "rt_tgsigqueueinfo": 297, "deny": (57, 58, 200, 101, 310, 311, 434, 424, 438)}),
    "aarch64": (0xC00000B7, {"clone": 220, "clone3": 435, "kill": 129, "rt_sigqueueinfo": 138, "tgkill": 131,
                             "rt_tgsigqueueinfo": 240, "deny": (130, 117, 270, 271, 434, 424, 438)}),
}
X32_BIT = 0x40000000
CLONE_THREAD = 0x00010000
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
LD_W_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2


def seccomp_program(machine, own_pid):
    """The BPF filter as (code, jt, jf, k) tuples: threads yes, child processes no, ptrace no,
    signals only to this process (kill, tgkill) or its own group (kill 0)."""
    arch, nr = SYSCALLS[machine]
    body = [("ld", 4), ("jeq", arch, None, "deny"), ("ld", 0)]
    if machine == "x86_64":
        body.append(("jge", X32_BIT, "deny", None))
    body += [("jeq", nr["clone3"], "enosys", None), ("jeq", nr["clone"], "clone", None)]
    body += [("jeq", nr[name], "self_or_group", None) for name in ("kill", "rt_sigqueueinfo")]
    body += [("jeq", nr[name], "self", None) for name in ("tgkill", "rt_tgsigqueueinfo")]
    body += [("jeq", number, "deny", None) for number in nr["deny"]]
    body += [
        ("ret", RET_ALLOW),
        "clone", ("ld", 16), ("jset", CLONE_THREAD, "allow", "deny"),
        "self_or_group", ("ld", 16), ("jeq", 0, "allow", None),
        "self", ("ld", 16), ("jeq", own_pid, "allow", "deny"),
        "allow", ("ret", RET_ALLOW),
        "deny", ("ret", RET_ERRNO | EPERM),
        "enosys", ("ret", RET_ERRNO | ENOSYS),
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

        def offset(label):
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

NETWORK_EVENTS = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
                  "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo")
SOCKET_OBJECT_EVENTS = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg")  # (socket, address)
PROCESS_EVENTS = ("os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "subprocess.Popen", "os.killpg", "resource.setrlimit", "resource.prlimit")
NATIVE_EVENTS = ("ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.cdata",
                 "ctypes.cdata/buffer", "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at",
                 "gc.get_objects", "gc.get_referrers", "gc.get_referents")
WRITE_EVENTS = ("os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime",
                "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr", "os.chflags")
WRITE_TARGET_EVENTS = ("os.rename", "os.symlink", "os.link")  # the second argument is where it writes
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Guard:
    """The audit hook: refuses what the sandbox forbids, with a message that says so."""

    def __init__(self, folder, protected, result):
        self.folder = folder
        self.readable = _prefixes(read_roots(folder))
        self.writable = _prefixes((folder,))
        self.protected = frozenset(protected)  # the harness's own files: never written by the program
        self.result = result
        self.violations = []
        # one dict lookup per audit event: most events (import, exec, compile, ...) are not ours
        self.rules = {"open": lambda args: self._open(*args[:3]), "os.kill": _signal,
                      "os.listdir": lambda args: self._read(args[0] if args else None)}
        self.rules["os.scandir"] = self.rules["os.listdir"]
        self.rules.update((event, _network(event)) for event in NETWORK_EVENTS)
        self.rules.update((event, _fixed(f"starting or controlling processes ({event})")) for event in PROCESS_EVENTS)
        self.rules.update((event, _fixed(f"native code or interpreter internals ({event})")) for event in NATIVE_EVENTS)
        self.rules.update((event, lambda args: self._write(args[0])) for event in WRITE_EVENTS)
        self.rules.update((event, lambda args: self._write(args[1])) for event in WRITE_TARGET_EVENTS)

    def __call__(self, event, args):
        rule = self.rules.get(event)
        problem = rule(args) if rule is not None else None
        if problem is not None:
            if len(self.violations) < MAX_VIOLATIONS:
                self.violations.append(problem)
                # recorded as it happens, so a run that then times out or crashes still reports it
                write_verdict(self.result, {"status": "running", "violations": self.violations}, final=False)
            raise SandboxViolation(f"blocked by the sandbox: {problem}")

    def _open(self, path, mode, flags):
        if isinstance(path, int):
            return None
        writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
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
        """The absolute path an operation touches; symlinks resolved where the program can make them."""
        if path is None:
            path = "."
        try:
            where = os.path.abspath(os.fsdecode(path))
        except (TypeError, ValueError):
            return None
        return os.path.realpath(where) if _under(where, self.writable) else where


def _network(event):
    shown = 1 if event in SOCKET_OBJECT_EVENTS else 0
    return lambda args: f"network access ({event} {_shown(args[shown])})"


def _fixed(problem):
    return lambda args: problem


def _signal(args):
    return None if args[0] in (0, os.getpid()) else f"signalling another process (os.kill {args[0]})"


def _prefixes(roots):
    """Folders as (the folders, their prefixes) for `_under`, which runs on every file the program opens."""
    return frozenset(roots), tuple(root + "/" for root in roots)


def _under(path, prefixes):
    """Whether `path` is one of the folders of `_prefixes(...)` or inside one."""
    exact, inside = prefixes
    return path in exact or path.startswith(inside)


def _shown(value):
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def keep_python_paths(roots):
    """Drop import paths outside the readable roots (e.g. an editable install of the parent's project)."""
    readable = _prefixes(roots)
    sys.path[:] = [p for p in sys.path if _under(os.path.realpath(p or "."), readable)]
    sys.path_importer_cache.clear()


# ---- run and report -------------------------------------------------------------------------


def _one_line(text, limit=300):
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def verdict_of(exc):
    """How the program ended: ok, or the exception's type, one-line message and line in solution.py."""
    if exc is None:
        return {"status": "ok"}
    try:
        message = str(exc)
    except BaseException:
        message = "<unprintable exception>"
    line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "solution.py":
            line = tb.tb_lineno
        tb = tb.tb_next
    return {"status": "error", "error_type": type(exc).__name__, "message": _one_line(message),
            "line": line if isinstance(line, int) else None}


def write_verdict(handle, verdict, final=True):
    """Replace the result file's content with `verdict` (a Python literal)."""
    global _reserve
    if final:
        _reserve = None  # room to report a MemoryError
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(repr(verdict).encode("utf-8", "backslashreplace"))
        handle.flush()
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
        except Exception as exc:  # noqa: BLE001 - any failure means the layer is not there
            if not probe:
                raise SetupError(f"{name}: {exc}") from exc
    return applied


def main(source_path, result_path, layers):
    """Confine, install the guard, run solution.py as __main__, write the verdict, exit."""
    with open(source_path, "rb") as handle:
        source = handle.read()
    result = open(result_path, "wb")  # noqa: SIM115 - kept open for the whole run, as the verdict's channel
    folder = os.getcwd()
    probe = "probe" in layers
    try:
        applied = apply_layers(layers, folder, source, probe)
    except SetupError as exc:
        write_verdict(result, {"status": "setup_failed", "message": _one_line(str(exc))})
        os._exit(SETUP_FAILED)
    guard = None
    if "guard" in layers:
        keep_python_paths(read_roots(folder))
        guard = Guard(folder, {os.path.realpath(p) for p in (source_path, result_path, sys.argv[0])}, result)
        sys.addaudithook(guard)
        applied.append("guard")
    module = type(sys)("__main__")
    module.__file__ = "solution.py"
    sys.modules["__main__"] = module
    try:
        code = compile(source, "solution.py", "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except BaseException as exc:
        verdict = verdict_of(exc)
    else:
        verdict = verdict_of(None)
    verdict["violations"] = list(guard.violations) if guard else []
    if probe:
        verdict["applied"] = applied
    write_verdict(result, verdict)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], frozenset(filter(None, sys.argv[3].split(","))) if sys.argv[3:] else frozenset())
