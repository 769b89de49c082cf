"""Tiny 64-bit ELF files for the binary reader: a load segment and the sections CPython and
the linker put there (.PyRuntime with the debug-offsets cookie, a build id, DT_NEEDED)."""

import struct

PY_314 = 0x030E0AF0  # 3.14.10 final


def make_elf(runtime=(PY_314, False), build_id=b"\x12\x34\x56\x78", needed=(),
             cookie=b"xdebugpy", runtime_addr=0x401000):
    names = b"\0.shstrtab\0.PyRuntime\0.note.gnu.build-id\0.dynamic\0.dynstr\0"
    off = {n: names.index(n) for n in (b".shstrtab", b".PyRuntime", b".note.gnu.build-id",
                                       b".dynamic", b".dynstr")}
    body = bytearray(b"\0" * 0x200)  # headers go first; section data from 0x200
    sections = [(0, 0, 0, 0, 0, 0)]  # (name, type, addr, offset, size)
    sections[0] = (0, 0, 0, 0, 0)

    def add(name, kind, data, addr=0):
        pos = len(body)
        body.extend(data)
        while len(body) % 8:
            body.append(0)
        sections.append((off[name], kind, addr, pos, len(data)))

    add(b".shstrtab", 3, names)
    if runtime is not None:
        add(b".PyRuntime", 1, cookie + struct.pack("<QQ", runtime[0], int(runtime[1]))
            + b"\0" * 40, runtime_addr)
    if build_id is not None:
        add(b".note.gnu.build-id", 7, struct.pack("<III", 4, len(build_id), 3) + b"GNU\0"
            + build_id)
    if needed:
        strs = b"\0" + b"".join(n.encode() + b"\0" for n in needed)
        add(b".dynstr", 3, strs)
        dyn, pos = b"", 1
        for n in needed:
            dyn += struct.pack("<qQ", 1, pos)
            pos += len(n) + 1
        add(b".dynamic", 6, dyn + struct.pack("<qQ", 0, 0))
    shoff = len(body)
    for name, kind, addr, pos, size in sections:
        body.extend(struct.pack("<IIQQQQIIQQ", name, kind, 0, addr, pos, size, 0, 0, 8, 0))
    head = (b"\x7fELF\x02\x01\x01" + b"\0" * 9
            + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, shoff, 0, 64, 56, 1, 64,
                          len(sections), 1))
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, len(body), len(body), 0x1000)
    body[0:64] = head
    body[64:120] = phdr
    return bytes(body)
