#!/usr/bin/python3
"""Runs a command inside the kernel-side sandbox a systemd unit file asks for.

PID 1 is not systemd on the test machine, so `systemctl start` cannot apply the unit's
SystemCallFilter=, SystemCallErrorNumber=, RestrictAddressFamilies= and
MemoryDenyWriteExecute=. This does what systemd does for them, from the installed unit:
the syscall groups are expanded by `systemd-analyze syscall-filter` (the same tables
systemd uses), the filter is loaded with libseccomp (python3-seccomp), and W^X memory is
refused with the kernel's PR_SET_MDWE (Linux 6.3 or later, the kernel's own form of
MemoryDenyWriteExecute). Run it after dropping to the unit's User= with no_new_privs set
(setpriv --no-new-privs); then it execs the command.

    unit_sandbox.py UNIT_FILE -- COMMAND [ARGS...]
"""

import ctypes
import errno
import os
import socket
import subprocess
import sys

import seccomp

PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1


def unit_settings(path):
    """The [Service] assignments of a unit file, in order (repeated keys kept)."""
    settings = []
    section = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                key, value = line.split("=", 1)
                settings.append((key.strip(), value.strip()))
    return settings


def expand(name, seen=None):
    """The syscalls of `name` (a syscall or an @group, nested groups included)."""
    if not name.startswith("@"):
        return {name}
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", name],
        check=True, capture_output=True, text=True,
    ).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        calls |= expand(item, seen)
    return calls


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    unit, command = sys.argv[1], sys.argv[3:]
    settings = unit_settings(unit)

    allowed, denied, allow_list = set(), set(), None
    error = errno.EPERM
    families = None
    mdwe = False
    for key, value in settings:
        if key == "SystemCallFilter" and value:
            deny = value.startswith("~")
            names = value.lstrip("~").split()
            if allow_list is None:
                allow_list = not deny
            for n in names:
                (denied if deny else allowed).update(expand(n))
        elif key == "SystemCallErrorNumber":
            error = getattr(errno, value)
        elif key == "RestrictAddressFamilies" and value:
            families = {getattr(socket, f) for f in value.split()}
        elif key == "MemoryDenyWriteExecute":
            mdwe = value.lower() in ("yes", "true", "1", "on")

    if mdwe:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            sys.exit(f"unit_sandbox: PR_SET_MDWE failed: {os.strerror(ctypes.get_errno())}")

    if allow_list:
        f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(error))
        permitted = allowed - denied
        if families is not None:
            permitted.discard("socket")
            for family in sorted(families):
                f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, family))
        skipped = []
        for name in sorted(permitted):
            try:
                f.add_rule(seccomp.ALLOW, name)
            except (RuntimeError, ValueError):
                skipped.append(name)  # not a syscall of this architecture
        f.load()
        print(
            f"unit_sandbox: {len(permitted) - len(skipped)} syscalls allowed, others -> "
            f"{errno.errorcode[error]}; address families "
            f"{[socket.AddressFamily(f).name for f in sorted(families or [])]}; "
            f"MemoryDenyWriteExecute={'yes' if mdwe else 'no'}",
            file=sys.stderr,
            flush=True,
        )
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
