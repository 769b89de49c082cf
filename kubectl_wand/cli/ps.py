"""`kubectl wand ps [TARGET]`: the Python processes in a target, and whether each can be attached."""

import json

import click
from tabulate import tabulate

from kubectl_wand import progress
from kubectl_wand.cli.common import PROC_HEADERS, color_ok, kube_options, proc_row, target_options
from kubectl_wand.engine import listing
from kubectl_wand.safe_text import safe


def cut_notes(results) -> list:
    """What the helper left out of the listing (bounded per process and in total)."""
    notes = []
    for box, procs, _, cut in results:
        argv = [p.pid for p in procs if p.extra.get("argv_cut")]
        at = next((p.extra["argv_cut"] for p in procs if p.extra.get("argv_cut")), 0)
        if argv:
            notes.append(f"note: {safe(box.display)}: command line of PID "
                         f"{', '.join(map(str, argv[:10]))}{', …' if len(argv) > 10 else ''} "
                         f"cut at {safe(at, 12)} bytes (ps -o json: argv_cut)")
        if cut:
            notes.append(f"note: {safe(box.display)}: {cut} more "
                         "process(es) not listed (the list is bounded; Python processes first)")
    return notes


@click.command("ps")
@click.argument("target", required=False, default=None)
@click.option("-o", "--output", type=click.Choice(["table", "wide", "json"]), default="table",
              help="Output format.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Pods in every namespace.")
@click.option("--all", "show_all", is_flag=True, help="Also list non-Python processes we can see.")
@target_options
@kube_options
def command(target, output, all_namespaces, show_all, pid, topts):
    """List Python processes in TARGET (default: pods of the current namespace)."""
    backend, boxes = listing.targets(listing.ListOptions(target, topts, all_namespaces))
    with progress.spinner(f"listing processes in {len(boxes)} target"
                          + ("s" if len(boxes) != 1 else "")):
        results = [(r.box, [p for p in r.procs if pid is None or p.pid == pid], r.error, r.cut)
                   for r in listing.list_processes(backend, boxes)]
    failed = False
    if output == "json":
        out = []
        for box, procs, err, cut in results:
            item = {"target": box.display, **(box.summary.to_json() if box.summary else {}),
                    "processes": [p.to_json() for p in procs if p.python or show_all]}
            if cut:
                item["processes_not_listed"] = cut
            if err:
                item["error"] = {"message": err.message, "hint": err.hint, "code": err.code}
                failed = True
            out.append(item)
        click.echo(json.dumps(out, indent=2))
        for note in cut_notes(results):
            click.echo(note, err=True)
    else:
        kube = any(b.summary for b, _, _, _ in results)
        multi = kube or len(results) > 1
        rows = []
        for box, procs, err, _ in results:
            if kube:
                sm = box.summary
                prefix = [safe(x, 253) for x in ([sm.namespace] if all_namespaces else []) + [
                    sm.pod, sm.container, sm.node or "-", "yes" if sm.ready else "no", sm.age]]
            else:
                prefix = [safe(box.display, 253)] if multi else []
            if err:
                failed = True
                rows.append(prefix + ["-"] * (len(PROC_HEADERS) - 1)
                            + [safe(f"error: {err.message}", 300)])
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
        for note in cut_notes(results):
            click.echo(note, err=True)
    if failed and all(err for _, _, err, _ in results):
        raise SystemExit(1)


def _painted(row):
    """The ATTACH cell green/red — on a terminal only, never with NO_COLOR."""
    if color_ok():
        i = PROC_HEADERS.index("ATTACH")
        row[i] = click.style(row[i], fg="green" if row[i] == "yes" else "red")
    return row

