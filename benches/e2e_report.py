#!/usr/bin/env python3
"""Turns the measurements of benches/e2e.sh into a Markdown report.

usage: e2e_report.py META TSV

META holds key=value lines about the machine and the run. Each TSV line is one timed
phase: rep, tool, phase, wall s, user s, sys s, max RSS KiB, repository bytes, status,
1-minute load average at the start, note.
"""
import statistics
import sys
from collections import defaultdict

TOOLS_ORDER = ["cairn", "restic", "borg"]


def load(meta_path, tsv_path):
    meta = {}
    with open(meta_path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    rows = []
    with open(tsv_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            parts += [""] * (11 - len(parts))
            rep, tool, phase, wall, user, sys_, rss, size, status, load_, note = parts[:11]
            rows.append(
                dict(rep=int(rep), tool=tool, phase=phase, wall=num(wall), user=num(user), sys=num(sys_),
                     rss=num(rss), size=num(size), status=status, load=num(load_), note=note)
            )
    return meta, rows


def num(s):
    try:
        return float(s)
    except ValueError:
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=1):
    return "–" if x is None else f"{x:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}"


def phase_order(rounds):
    return ["init", "backup-first", "backup-nochange"] + [f"round-{i}" for i in range(1, rounds + 1)] + [
        "restore",
        "check",
    ]


def main():
    meta, rows = load(sys.argv[1], sys.argv[2])
    rounds = int(meta.get("rounds", "0"))
    phases = phase_order(rounds)
    tools = [t for t in TOOLS_ORDER if t in meta.get("tools", "").split()]
    reps = sorted({r["rep"] for r in rows})

    by = {}  # (rep, tool, phase) -> row
    for r in rows:
        by[(r["rep"], r["tool"], r["phase"])] = r

    # Growth of the repository in each phase that writes to it, per repetition.
    growth = {}
    for rep in reps:
        for tool in tools:
            prev = None
            for ph in phases:
                r = by.get((rep, tool, ph))
                if r is None or r["size"] is None:
                    continue
                if prev is not None and ph != "init":
                    growth[(rep, tool, ph)] = r["size"] - prev
                prev = r["size"]

    def stat(tool, ph):
        rs = [by[(rep, tool, ph)] for rep in reps if (rep, tool, ph) in by]
        if not rs:
            return None
        cpu = [None if r["user"] is None or r["sys"] is None else r["user"] + r["sys"] for r in rs]
        statuses = sorted({r["status"] for r in rs})
        return dict(
            wall=med(r["wall"] for r in rs),
            cpu=med(cpu),
            rss=None if med(r["rss"] for r in rs) is None else med(r["rss"] for r in rs) / 1024,
            size=None if med(r["size"] for r in rs) is None else med(r["size"] for r in rs) / 1e6,
            growth=None
            if med(growth.get((rep, tool, ph)) for rep in reps) is None
            else med(growth.get((rep, tool, ph)) for rep in reps) / 1e6,
            status=", ".join(statuses),
            notes=[r["note"] for r in rs if r["note"] and r["status"] not in ("ok",)],
        )

    out = []
    w = out.append
    w("# cairn end-to-end benchmark: latest results")
    w("")
    w(f"Run {meta.get('date', '?')} with `bash benches/e2e.sh --scale {meta.get('scale')} "
      f"--rounds {rounds} --repeat {meta.get('repeat')}`.")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| machine | {meta.get('nproc')} CPUs ({meta.get('cpu')}), {meta.get('ram')} RAM |")
    w(f"| system | {meta.get('os')}, {meta.get('kernel')}, work folder on {meta.get('fs')} |")
    w(f"| load average (1, 5, 15 min) | at start {meta.get('load_start')}, at end {meta.get('load_end')} |")
    w(f"| cairn | {meta.get('cairn')} |")
    if "restic" in tools:
        w(f"| restic | {meta.get('restic')} |")
    if "borg" in tools:
        w(f"| borg | {meta.get('borg')} |")
    cb, cf = num(meta.get("corpus_bytes", "")), meta.get("corpus_files")
    ce, cfe = num(meta.get("corpus_bytes_end", "")), meta.get("corpus_files_end")
    gen = med(by[(rep, "corpus", "generate")]["wall"] for rep in reps if (rep, "corpus", "generate") in by)
    w(f"| corpus | scale {meta.get('scale')}: {cf} files, {fmt(cb and cb / 1e6)} MB, generated in "
      f"{fmt(gen, 2)} s; after {rounds} rounds {cfe} files, {fmt(ce and ce / 1e6)} MB |")
    w(f"| repetitions | {meta.get('repeat')} (the median of each figure is shown) |")
    w("")
    w("Settings: cairn defaults (zstd level 3, chunks 16K/64K/256K, Argon2id 64 MiB); "
      "restic repository version 2 with its default `auto` compression; "
      f"borg `init -e repokey-blake2`, `create --compression {meta.get('borg_compression')}` "
      "(borg 1.x's default). Every backup uses the same absolute path and a fixed host "
      "(`--host bench` for cairn and restic), so each tool finds its previous snapshot and "
      "skips unchanged files. The page cache is warmed (every corpus file read once) before "
      "the first backup and after each mutation, and each tool's repository is read once "
      "before its restore and its check. restic and borg keep a local cache "
      "(not counted in the repository size): "
      + ", ".join(f"{t} {fmt(num(meta.get('cache_' + t, '')) and num(meta.get('cache_' + t)) / 1e6)} MB"
                  for t in tools if t != "cairn")
      + ".")
    w("")
    w("Units: wall and CPU (user + system) in seconds; peak RSS in MiB; repository size and "
      "growth in MB (10^6 bytes, `du -sb` of the repository folder).")
    w("")
    w("## Per phase")
    w("")
    w("| phase | tool | wall s | CPU s | peak RSS MiB | repo MB | growth MB | status |")
    w("|---|---|--:|--:|--:|--:|--:|---|")
    failures = []
    for ph in phases:
        for tool in tools:
            s = stat(tool, ph)
            if s is None:
                continue
            w(f"| {ph} | {tool} | {fmt(s['wall'], 2)} | {fmt(s['cpu'], 2)} | {fmt(s['rss'], 0)} | "
              f"{fmt(s['size'])} | {fmt(s['growth'])} | {s['status']} |")
            for n in s["notes"]:
                failures.append(f"- {tool} {ph}: {n}")
    w("")

    compare = [t for t in ("restic", "borg") if t in tools]
    if "cairn" in tools and compare:
        w("## cairn relative to the others (ratio of medians; below 1 means cairn is faster / smaller)")
        w("")
        head = "| phase |"
        sep = "|---|"
        for t in compare:
            head += f" wall c/{t[0]} | CPU c/{t[0]} | RSS c/{t[0]} | repo c/{t[0]} | growth c/{t[0]} |"
            sep += "--:|--:|--:|--:|--:|"
        w(head)
        w(sep)
        for ph in phases:
            c = stat("cairn", ph)
            if c is None:
                continue
            line = f"| {ph} |"
            for t in compare:
                o = stat(t, ph) or {}
                line += "".join(
                    f" {ratio(c[k], o.get(k))} |" for k in ("wall", "cpu", "rss", "size", "growth"))
            w(line)
        w("")
        w("(c/r = cairn/restic, c/b = cairn/borg.)")
        w("")

    if rounds:
        w(f"## The {rounds} change rounds together")
        w("")
        w("| tool | wall s (sum) | CPU s (sum) | peak RSS MiB (max) | growth MB (sum) | growth MB per round |")
        w("|---|--:|--:|--:|--:|--:|")
        for tool in tools:
            ss = [stat(tool, f"round-{i}") for i in range(1, rounds + 1)]
            ss = [s for s in ss if s]
            if not ss:
                continue

            def total(k):
                xs = [s[k] for s in ss if s[k] is not None]
                return sum(xs) if xs else None
            rss = max((s["rss"] for s in ss if s["rss"] is not None), default=None)
            g = total("growth")
            w(f"| {tool} | {fmt(total('wall'), 2)} | {fmt(total('cpu'), 2)} | {fmt(rss, 0)} | {fmt(g)} | "
              f"{fmt(g / len(ss) if g is not None else None, 2)} |")
        mut = [med(by[(rep, "corpus", f"round-{i}")]["wall"] for rep in reps if (rep, "corpus", f"round-{i}") in by)
               for i in range(1, rounds + 1)]
        mut = [m for m in mut if m is not None]
        if mut:
            w("")
            w(f"Applying one mutation to the corpus took {fmt(min(mut), 2)}–{fmt(max(mut), 2)} s (not counted above).")
        w("")

    w("## Restore verification")
    w("")
    for rep in reps:
        for tool in tools:
            r = by.get((rep, tool, "verify"))
            if r:
                w(f"- repetition {rep}, {tool}: {r['note']}")
    w("")
    if failures:
        w("## Errors")
        w("")
        out.extend(failures)
        w("")

    w("## What each tool reported (repetition 1)")
    w("")
    w("| phase | tool | summary |")
    w("|---|---|---|")
    for ph in phases:
        for tool in tools:
            r = by.get((reps[0], tool, ph)) if reps else None
            if r and r["note"]:
                w(f"| {ph} | {tool} | {r['note']} |")
    w("")
    w("## Phases")
    w("")
    w("- init: create an empty repository.")
    w("- backup-first: back up the whole corpus into the empty repository.")
    w("- backup-nochange: back up again with nothing changed (change detection only).")
    w("- round-N: the corpus is mutated once (`corpus mutate DIR N`: ~1% of the small files "
      "edited, a few renamed, added and deleted, logs appended, one deployed store changed, a "
      "new database dump with rows rewritten in the middle and rows appended), then every tool "
      "backs up the same tree.")
    w("- restore: restore the latest snapshot into an empty folder (then compared with the "
      "corpus by `diff -r`, untimed).")
    w("- check: verify the repository reading all data (cairn `check --read-data`, restic "
      "`check --read-data`, borg `check --verify-data`).")
    w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
