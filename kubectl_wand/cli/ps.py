"""`kubectl wand ps [TARGET]`: the Python processes in a target, and whether each can be attached."""

import json
from concurrent.futures import ThreadPoolExecutor

import click
from tabulate import tabulate

from kubectl_wand import progress
from kubectl_wand.cli.common import (PROC_HEADERS, color_ok, kube_options, proc_row, resolve,
                                     target_options)
from kubectl_wand.engine.session import Session
from kubectl_wand.errors import WandError


def scan_box(backend, box):
    try:
        return box, Session(backend, box, timeout=60).open("ps"), None
    except WandError as e:
        return box, [], e


@click.command("ps")
@click.argument("target", required=False, default=None)
@click.option("-o", "--output", type=click.Choice(["table", "wide", "json"]), default="table",
              help="Output format.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Pods in every namespace.")
@click.option("--all", "show_all", is_flag=True, help="Also list non-Python processes we can see.")
@target_options
@kube_options
def command(target, output, all_namespaces, show_all, **opts):
    """List Python processes in TARGET (default: pods of the current namespace)."""
    opts["all_namespaces"] = all_namespaces
    opts["for_ps"] = True
    _, backend, boxes = resolve(target, opts) if target else _default(opts)
    with progress.spinner(f"listing processes in {len(boxes)} target"
                          + ("s" if len(boxes) != 1 else "")), \
            ThreadPoolExecutor(max_workers=min(8, max(1, len(boxes)))) as pool:
        results = list(pool.map(lambda b: scan_box(backend, b), boxes))
    failed = False
    if output == "json":
        out = []
        for box, procs, err in results:
            item = {"target": box.display, **box.extra.get("summary", {}),
                    "processes": [p.to_json() for p in procs if p.python or show_all]}
            if err:
                item["error"] = {"message": err.message, "hint": err.hint, "code": err.code}
                failed = True
            out.append(item)
        click.echo(json.dumps(out, indent=2))
    else:
        kube = any(b.extra.get("summary") for b, _, _ in results)
        multi = kube or len(results) > 1
        rows = []
        for box, procs, err in results:
            if kube:
                sm = box.extra["summary"]
                prefix = ([sm["namespace"]] if all_namespaces else []) + [
                    sm["pod"], sm["container"], sm["node"] or "-",
                    "yes" if sm["ready"] else "no", sm["age"]]
            else:
                prefix = [box.display] if multi else []
            if err:
                failed = True
                rows.append(prefix + ["-"] * (len(PROC_HEADERS) - 1) + [f"error: {err.message}"])
                continue
            shown = [p for p in procs if p.python or show_all]
            if not shown:
                rows.append(prefix + ["-"] * (len(PROC_HEADERS) - 1) + ["(no Python process)"])
            for p in shown:
                rows.append(prefix + _painted(proc_row(p, wide=output == "wide")))
        if kube:
            headers = (["NAMESPACE"] if all_namespaces else []) + [
                "POD", "CONTAINER", "NODE", "READY", "AGE"] + PROC_HEADERS
        else:
            headers = (["TARGET"] if multi else []) + PROC_HEADERS
        click.echo(tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True))
    if failed and all(err for _, _, err in results):
        raise SystemExit(1)


def _painted(row):
    """The ATTACH cell green/red — on a terminal only, never with NO_COLOR."""
    if color_ok():
        i = PROC_HEADERS.index("ATTACH")
        row[i] = click.style(row[i], fg="green" if row[i] == "yes" else "red")
    return row


def _default(opts):
    from kubectl_wand.backends.kubernetes import KubernetesBackend

    backend = KubernetesBackend(opts)
    return None, backend, backend.resolve(None)
