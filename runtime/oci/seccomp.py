"""The container's seccomp filter: podman's default profile, compiled by libseccomp, loaded last.

The profile is the one podman uses: containers-common's ``seccomp.json`` when the host has it
(``/usr/share/containers/seccomp.json``), else the built-in one below, in the same JSON format.
``--security-opt seccomp=FILE`` takes another profile in that format, ``seccomp=unconfined`` none.

libseccomp (through the ``pyseccomp`` binding; no hand-assembled BPF) compiles a profile for the
container's capabilities and the host's architecture into a BPF program. Compiling costs ~25 ms
(mostly importing the binding), so programs are cached in the store, keyed by the profile's bytes,
the capabilities, the architecture and the kernel release: a container start reads a few KiB and
makes one prctl. The program is loaded by the container's process itself, just before it drops
its capabilities and execs (``rootlet.runtime.linux.syscalls.load_seccomp``), so the filter also
covers everything it runs.
"""

from __future__ import annotations

import os
import zlib

from rootlet.registry import jsoncodec
from rootlet.registry.errors import UsageError
from rootlet.registry.fsutil import atomic_write

#: Where podman's default profile lives (containers-common), in the order podman looks.
DEFAULT_PROFILES = ("/usr/share/containers/seccomp.json", "/etc/containers/seccomp.json")
#: Bumped when the compiler changes what it makes of a profile (invalidates the cache).
COMPILER_VERSION = "1"
#: A profile is small: refuse a file larger than this.
MAX_PROFILE = 1 << 20

#: The built-in profile, for hosts without containers-common: everything is allowed but the
#: syscalls docker and podman refuse to containers (kernel modules, keyrings of other sessions,
#: clocks, BPF and perf, io_uring, swap, kexec, raw I/O ports, handle-based opens, the audit
#: netlink socket), each allowed again where the capability that guards it was granted.
BUILTIN_PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {"names": ["add_key", "request_key", "bdflush", "io_pgetevents", "io_uring_enter", "io_uring_register",
                   "io_uring_setup", "kexec_file_load", "kexec_load", "migrate_pages", "move_pages", "nfsservctl",
                   "pciconfig_iobase", "pciconfig_read", "pciconfig_write", "swapcontext", "swapoff", "swapon",
                   "sysfs", "_sysctl", "uselib", "userfaultfd", "ustat", "vm86", "vm86old", "create_module",
                   "get_kernel_syms", "reboot"],
         "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["open_by_handle_at"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "excludes": {"caps": ["CAP_DAC_READ_SEARCH"]}},
        {"names": ["bpf", "fanotify_init", "lookup_dcookie", "perf_event_open", "quotactl", "setdomainname",
                   "sethostname", "setns"],
         "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
        {"names": ["delete_module", "finit_module", "init_module", "query_module"], "action": "SCMP_ACT_ERRNO",
         "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_MODULE"]}},
        {"names": ["acct"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_PACCT"]}},
        {"names": ["kcmp", "process_madvise"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "excludes": {"caps": ["CAP_SYS_PTRACE"]}},
        {"names": ["ioperm", "iopl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "excludes": {"caps": ["CAP_SYS_RAWIO"]}},
        {"names": ["clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64", "settimeofday",
                   "stime"],
         "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_TIME"]}},
        {"names": ["vhangup"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_TTY_CONFIG"]}},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "excludes": {"caps": ["CAP_AUDIT_WRITE"]},
         "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]},
    ],
}

_ARCHES = {  # uname -m → the profile's (and Go's) architecture names
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"), "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"), "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "i686": ("386", "SCMP_ARCH_X86"),
}


def default_profile() -> bytes:
    """podman's default profile from containers-common, or the built-in one."""
    for path in DEFAULT_PROFILES:
        try:
            with open(path, "rb") as f:
                return f.read(MAX_PROFILE + 1)
        except OSError:
            continue
    return jsoncodec.dumps(BUILTIN_PROFILE, sort_keys=True).encode()


def read_profile(path: str) -> bytes:
    """A profile file given with ``--security-opt seccomp=FILE``, checked now (UsageError if unusable)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROFILE + 1)
    except OSError as e:
        raise UsageError(f"cannot read the seccomp profile {path}: {e.strerror}",
                         "give a JSON profile in podman's format, or seccomp=unconfined") from None
    if len(data) > MAX_PROFILE:
        raise UsageError(f"the seccomp profile {path} is larger than {MAX_PROFILE} bytes")
    _parse(data, path)
    return data


def _parse(data: bytes, where: str) -> dict[str, object]:
    try:
        doc = jsoncodec.loads(data)
    except ValueError as e:
        raise UsageError(f"the seccomp profile {where} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("syscalls", []), list) or \
            not isinstance(doc.get("defaultAction"), str):
        raise UsageError(f"the seccomp profile {where} is not a seccomp profile",
                         'it needs "defaultAction" and a "syscalls" list (podman\'s format)')
    return doc


def program(profile: bytes, caps: tuple[str, ...] | list[str], cache_dir: str) -> bytes:
    """The BPF program of ``profile`` for a process with ``caps``, from the cache or compiled.

    A cache entry holds the whole key (profile, capabilities, architecture, kernel, compiler
    version) before the program, and is used only when that matches byte for byte: its name (a
    CRC) only narrows the search, so no hash module is needed on every container start.
    """
    uname = os.uname()
    key = b"\0".join([COMPILER_VERSION.encode(), ",".join(sorted(caps)).encode(), uname.machine.encode(),
                      uname.release.encode(), profile])
    header = len(key).to_bytes(8, "little") + key
    path = os.path.join(cache_dir, f"{zlib.crc32(key):08x}-{len(key)}.bpf")
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data.startswith(header):
            return data[len(header):]
    except FileNotFoundError:
        pass
    bpf = compile_profile(profile, caps)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    atomic_write(path, header + bpf, 0o600, durable=False)
    return bpf


def compile_profile(profile: bytes, caps: tuple[str, ...] | list[str]) -> bytes:
    """Compile a profile with libseccomp for this architecture and these capabilities."""
    import tempfile

    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError) as e:  # RuntimeError: the binding found no libseccomp
        raise UsageError(f"seccomp profiles need libseccomp: {e}",
                         "apt-get install libseccomp2 (and pip install pyseccomp), or run with "
                         "--security-opt seccomp=unconfined") from None
    doc = _parse(profile, "in use")
    arch_name, _ = _ARCHES.get(os.uname().machine, (os.uname().machine, ""))
    wanted = set(caps)
    filt = sc.SyscallFilter(_action(sc, str(doc["defaultAction"]), doc.get("defaultErrnoRet")))
    for entry in doc.get("archMap") or ():
        if isinstance(entry, dict) and _ARCHES.get(os.uname().machine, ("", ""))[1] == entry.get("architecture"):
            for sub in entry.get("subArchitectures") or ():
                arch = getattr(sc.Arch, str(sub).removeprefix("SCMP_ARCH_"), None)
                if arch is not None:
                    try:
                        filt.add_arch(arch)
                    except OSError:
                        pass  # already there
    for rule in doc.get("syscalls") or ():
        if not isinstance(rule, dict) or not _applies(rule, wanted, arch_name):
            continue
        action = _action(sc, str(rule.get("action")), rule.get("errnoRet"))
        args = [sc.Arg(int(a["index"]), _op(sc, str(a.get("op", "SCMP_CMP_EQ"))), int(a.get("value", 0)),
                       int(a.get("valueTwo", 0))) for a in rule.get("args") or ()]
        for name in rule.get("names") or ():
            number = sc.resolve_syscall(sc.Arch.NATIVE, str(name))
            if number < 0:
                continue  # not a syscall of this architecture
            try:
                filt.add_rule(action, number, *args)
            except OSError:
                continue  # the default action already does this (libseccomp refuses such a rule)
    with tempfile.TemporaryFile() as out:
        filt.export_bpf(out)
        out.seek(0)
        return out.read()


def _applies(rule: dict[str, object], caps: set[str], arch: str) -> bool:
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    if not isinstance(includes, dict) or not isinstance(excludes, dict):
        return False
    if includes.get("caps") and not set(includes["caps"]) <= caps:  # type: ignore[arg-type]
        return False
    if includes.get("arches") and arch not in includes["arches"]:  # type: ignore[operator]
        return False
    if includes.get("minKernel") and _kernel() < _version(str(includes["minKernel"])):
        return False
    if excludes.get("caps") and set(excludes["caps"]) & caps:  # type: ignore[arg-type]
        return False
    if excludes.get("arches") and arch in excludes["arches"]:  # type: ignore[operator]
        return False
    return True


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("-")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _kernel() -> tuple[int, ...]:
    return _version(os.uname().release)


def _action(sc: object, name: str, errno_ret: object) -> int:
    errno_value = int(errno_ret) if isinstance(errno_ret, int) else 1
    actions = {"SCMP_ACT_ALLOW": sc.ALLOW, "SCMP_ACT_KILL": sc.KILL,  # type: ignore[attr-defined]
               "SCMP_ACT_KILL_THREAD": sc.KILL_THREAD, "SCMP_ACT_KILL_PROCESS": sc.KILL_PROCESS,  # type: ignore[attr-defined]
               "SCMP_ACT_TRAP": sc.TRAP, "SCMP_ACT_LOG": sc.LOG,  # type: ignore[attr-defined]
               "SCMP_ACT_ERRNO": sc.ERRNO(errno_value), "SCMP_ACT_TRACE": sc.TRACE(errno_value)}  # type: ignore[attr-defined]
    if name not in actions:
        raise UsageError(f"unsupported seccomp action {name!r} in the profile")
    return actions[name]


def _op(sc: object, name: str) -> int:
    ops = {"SCMP_CMP_NE": sc.NE, "SCMP_CMP_LT": sc.LT, "SCMP_CMP_LE": sc.LE, "SCMP_CMP_EQ": sc.EQ,  # type: ignore[attr-defined]
           "SCMP_CMP_GE": sc.GE, "SCMP_CMP_GT": sc.GT, "SCMP_CMP_MASKED_EQ": sc.MASKED_EQ}  # type: ignore[attr-defined]
    if name not in ops:
        raise UsageError(f"unsupported seccomp comparison {name!r} in the profile")
    return ops[name]
