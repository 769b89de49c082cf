"""Rules of the test API server that need no state: label/field selectors, the strategic merge
of a container spec, Pod Security admission (pod-security-admission's checks for the fields
an ephemeral debug container can set, in check-ID order, with the real texts)."""
import json
import re


def go_quote(s):
    return json.dumps(s, ensure_ascii=False)


def parse_selector(sel):
    reqs = []
    if not sel:
        return reqs
    # split on commas not inside parentheses
    parts, depth, cur = [], 0, ""
    for ch in sel:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for p in parts:
        p = p.strip()
        if not p:
            continue
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\((.*)\)$", p)
        if m:
            vals = {v.strip() for v in m.group(3).split(",")}
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.match(r"^([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)$", p)
        if m:
            op = {"=": "==", "==": "==", "!=": "!="}[m.group(2)]
            reqs.append((m.group(1), op, m.group(3)))
            continue
        m = re.match(r"^(!?)([\w./-]+)$", p)
        if m:
            reqs.append((m.group(2), "!exists" if m.group(1) else "exists", None))
            continue
        raise ValueError("unable to parse requirement: %r" % p)
    return reqs


def match_selector(labels, reqs):
    labels = labels or {}
    for k, op, v in reqs:
        have = k in labels
        val = labels.get(k)
        if op == "==" and val != v:
            return False
        if op == "!=" and have and val == v:
            return False
        if op == "in" and (not have or val not in v):
            return False
        if op == "notin" and have and val in v:
            return False
        if op == "exists" and not have:
            return False
        if op == "!exists" and have:
            return False
    return True


def match_field_selector(obj, sel):
    if not sel:
        return True
    for part in sel.split(","):
        m = re.match(r"^([\w.]+)\s*(==|!=|=)\s*(.*)$", part.strip())
        if not m:
            raise ValueError("field selector %r" % sel)
        path, op, val = m.groups()
        cur = obj
        for seg in path.split("."):
            cur = cur.get(seg) if isinstance(cur, dict) else None
        cur = "" if cur is None else str(cur)
        if (op == "!=") == (cur == val):
            return False
    return True



def merge_patch(base, patch):
    """Strategic-merge-ish: dicts merge recursively, env merges by name, other lists/scalars replace."""
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge_patch(base[k], v)
        elif k == "env" and isinstance(v, list) and isinstance(base.get(k), list):
            names = {e["name"]: i for i, e in enumerate(base[k])}
            for e in v:
                if e.get("name") in names:
                    base[k][names[e["name"]]] = e
                else:
                    base[k].append(e)
        else:
            base[k] = v
    return base


def psa_violations(level, pod_spec):
    """pod-security-admission: the checks relevant to debug containers, in check-ID order."""
    pod_sc = pod_spec.get("securityContext") or {}
    containers = list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or []) + \
        list(pod_spec.get("ephemeralContainers") or [])

    def plural(names):
        return ("container" if len(names) == 1 else "containers") + " " + ", ".join(go_quote(n) for n in names)

    res = []
    if level == "restricted":
        bad = [c["name"] for c in containers if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False]
        if bad:
            res.append("allowPrivilegeEscalation != false (%s must set securityContext.allowPrivilegeEscalation=false)" % plural(bad))
    caps_details = []
    if level == "baseline":
        allowed = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                   "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
        bad, capset = [], set()
        for c in containers:
            add = ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
            extra = [x for x in add if x not in allowed]
            if extra:
                bad.append(c["name"])
                capset.update(extra)
        if bad:
            res.append("non-default capabilities (%s must not include %s in securityContext.capabilities.add)"
                       % (plural(bad), ", ".join(go_quote(x) for x in sorted(capset))))
    else:
        missing_drop, adding, capset = [], [], set()
        for c in containers:
            caps = (c.get("securityContext") or {}).get("capabilities")
            if caps is None:
                missing_drop.append(c["name"])
                continue
            if "ALL" not in (caps.get("drop") or []):
                missing_drop.append(c["name"])
            extra = [x for x in caps.get("add") or [] if x != "NET_BIND_SERVICE"]
            if extra:
                adding.append(c["name"])
                capset.update(extra)
        if missing_drop:
            caps_details.append('%s must set securityContext.capabilities.drop=["ALL"]' % plural(missing_drop))
        if adding:
            caps_details.append("%s must not include %s in securityContext.capabilities.add"
                                % (plural(adding), ", ".join(go_quote(x) for x in sorted(capset))))
        if caps_details:
            res.append("unrestricted capabilities (%s)" % "; ".join(caps_details))
    bad = [c["name"] for c in containers if (c.get("securityContext") or {}).get("privileged")]
    if bad:
        res.append("privileged (%s must not set securityContext.privileged=true)" % plural(bad))
    if level == "restricted":
        pod_nonroot = pod_sc.get("runAsNonRoot") is True
        explicit_false = [c["name"] for c in containers if (c.get("securityContext") or {}).get("runAsNonRoot") is False]
        unset = [c["name"] for c in containers if (c.get("securityContext") or {}).get("runAsNonRoot") is None]
        if explicit_false or (unset and not pod_nonroot):
            parts = []
            if explicit_false:
                parts.append("%s must not set securityContext.runAsNonRoot=false" % plural(explicit_false))
            if unset and not pod_nonroot:
                parts.append("pod or %s must set securityContext.runAsNonRoot=true" % plural(unset))
            res.append("runAsNonRoot != true (%s)" % "; ".join(parts))
        bad = [c["name"] for c in containers if (c.get("securityContext") or {}).get("runAsUser") == 0]
        if bad:
            res.append("runAsUser=0 (%s must not set runAsUser=0)" % plural(bad))
        pod_secc = (pod_sc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
        unset = [c["name"] for c in containers
                 if ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost")]
        if unset and not pod_secc:
            res.append('seccompProfile (pod or %s must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
                       % plural(unset))
    return res
