"""The sandbox's system-call filter: a trial may not use the kernel's keyrings.

Keyrings are not files, and no namespace replaces them: a trial would inherit the server's
session keyring (a systemd service has one) and its user's keyrings, where one tenant's
trial read, planted and deleted another's keys, or filled the user's key quota. As
container runtimes do by default (Docker's profile), ``add_key``, ``request_key`` and
``keyctl`` fail with ``EPERM`` in the sandbox, for the machine's own system calls and for
those of its 32-bit compatibility mode (a trial may run a 32-bit program, whose calls have
other numbers). The filter is classic BPF, given to ``bwrap --seccomp FD``.

>>> len(program()) % 8 == 0  # on x86_64 and aarch64  # doctest: +SKIP
True
"""

from __future__ import annotations

import errno
import os
import struct

# struct seccomp_data: nr at 0, arch at 4. Classic BPF opcodes.
_LD_W_ABS, _JEQ_K, _AND_K, _RET_K = 0x20, 0x15, 0x54, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_X32_BIT = 0x40000000

# The kernel's machine -> [(AUDIT_ARCH_*, (add_key, request_key, keyctl), mask)]: its own
# calls, and its compatibility mode's.
ARCHES: dict[str, list[tuple[int, tuple[int, int, int], int]]] = {
    "x86_64": [(0xC000003E, (248, 249, 250), ~_X32_BIT & 0xFFFFFFFF),  # x32's calls carry a bit more
               (0x40000003, (286, 287, 288), 0)],                       # i386
    "aarch64": [(0xC00000B7, (217, 218, 219), 0),
                (0x40000028, (309, 310, 311), 0)],                      # 32-bit ARM (EABI)
    "riscv64": [(0xC00000F3, (217, 218, 219), 0)],
}


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes | None:
    """The filter for this kernel's machine (``os.uname().machine``), or None where its
    system-call numbers are not known here."""
    if machine is None:
        if os.uname().sysname != "Linux":
            return None
        machine = os.uname().machine
    arches = ARCHES.get(machine)
    if arches is None:
        return None
    # Layout: load arch; one test per arch jumping to its block; allow; each block (load nr,
    # mask, three tests jumping to deny, allow); deny.
    blocks = list(arches)
    block_len = [1 + (1 if mask else 0) + 3 + 1 for _, _, mask in blocks]
    head = 1 + len(blocks) + 1
    total = head + sum(block_len) + 1
    deny = total - 1
    out = [_ins(_LD_W_ABS, 4)]
    start = head
    for i, (arch, _, _) in enumerate(blocks):
        pc = 1 + i
        out.append(_ins(_JEQ_K, arch, jt=start - (pc + 1)))
        start += block_len[i]
    out.append(_ins(_RET_K, _ALLOW))  # another arch: none the kernel runs here
    for _, numbers, mask in blocks:
        out.append(_ins(_LD_W_ABS, 0))
        if mask:
            out.append(_ins(_AND_K, mask))
        for number in numbers:
            pc = len(out)
            out.append(_ins(_JEQ_K, number, jt=deny - (pc + 1)))
        out.append(_ins(_RET_K, _ALLOW))
    out.append(_ins(_RET_K, _ERRNO | errno.EPERM))
    assert len(out) == total
    return b"".join(out)
