"""The protobuf kubectl sends for a few built-in types (typed clients): SelfSubjectAccessReview
and Namespace in the `k8s\0` envelope (runtime.Unknown), read and written field by field."""



def _varint(b, i):
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def pb_fields(b):
    out, i = {}, 0
    while i < len(b):
        key, i = _varint(b, i)
        wt = key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            ln, i = _varint(b, i)
            v, i = b[i:i + ln], i + ln
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(key >> 3, v)
    return out


def _pb_len(field, data):
    n, enc = len(data), b""
    while True:
        enc += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            break
    return bytes([(field << 3) | 2]) + enc + data


def ssar_from_protobuf(body):
    raw = pb_fields(body[4:])[2]  # runtime.Unknown.raw
    spec = pb_fields(pb_fields(raw).get(2, b""))
    ra = pb_fields(spec.get(1, b""))
    names = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
    return {names[k]: v.decode() for k, v in ra.items() if k in names}


def _pb_all(b, field):
    """Every length-delimited value of a (repeated) field."""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        if key & 7 == 0:
            _, i = _varint(b, i)
            continue
        ln, i = _varint(b, i)
        if key >> 3 == field:
            out.append(b[i:i + ln])
        i += ln
    return out


def namespace_from_protobuf(body):
    """ObjectMeta (name, labels) of a Namespace in the `k8s\0` envelope."""
    meta = pb_fields(pb_fields(pb_fields(body[4:])[2]).get(1, b""))
    labels = {}
    for entry in _pb_all(pb_fields(pb_fields(body[4:])[2]).get(1, b""), 11):
        kv = pb_fields(entry)
        labels[kv.get(1, b"").decode()] = kv.get(2, b"").decode()
    return {"name": meta.get(1, b"").decode(), "labels": labels}


def ssar_to_protobuf(spec_bytes_ra, allowed, reason):
    status = (b"\x08\x01" if allowed else b"\x08\x00") + (_pb_len(2, reason.encode()) if reason else b"")
    raw = _pb_len(1, b"") + _pb_len(2, _pb_len(1, spec_bytes_ra)) + _pb_len(3, status)
    tm = _pb_len(1, b"authorization.k8s.io/v1") + _pb_len(2, b"SelfSubjectAccessReview")
    return b"k8s\x00" + _pb_len(1, tm) + _pb_len(2, raw)
