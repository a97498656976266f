"""Summaries of cold-start runs: median, min and max per (network, workload, mode), the floor,
and the outputs: results.json (every run), results.csv, report.md (markdown tables) and PNG
charts (matplotlib)."""

import csv
import json
import os
import statistics

from workloads import MODES, NETWORKS, parse_network

FIELDS = ["network", "workload", "mode", "run", "total_s", "pull_s", "create_s", "ready_s",
          "bytes_down", "bytes_up", "connections", "requests", "blob_requests",
          "snapshotter_cpu_s", "snapshotter_peak_kb", "present_s"]


def write_json(path, results, notes, meta):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"meta": meta, "notes": notes, "runs": results}, f, indent=1)
    os.replace(tmp, path)


def _med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _network(name):
    try:
        return parse_network(name)
    except ValueError:
        return NETWORKS.get(name)


def summarize(results):
    """A list of cells: dicts with network, workload, mode, n, median/min/max total and the
    medians of the other figures; floor cells (mode "floor") where they can be computed."""
    groups = {}
    for r in results:
        groups.setdefault((r["network"], r["workload"], r["mode"]), []).append(r)
    cells = []
    for (net, wl, mode), rows in groups.items():
        totals = [r["total_s"] for r in rows]
        c = {"network": net, "workload": wl, "mode": mode, "n": len(rows),
             "total_med": statistics.median(totals), "total_min": min(totals),
             "total_max": max(totals)}
        for k in ("pull_s", "create_s", "ready_s", "bytes_down", "requests", "blob_requests",
                  "snapshotter_cpu_s", "snapshotter_peak_kb", "present_s"):
            c[k] = _med(rows, k)
        cells.append(c)
    # The floor: the image already present (overlayfs runs' second start) plus the bytes a lazy
    # start fetched (lazysnap on demand: what the workload touched, in compressed chunks, plus
    # manifest, config and TOC) at link speed.
    for net, wl in {(c["network"], c["workload"]) for c in cells}:
        by_mode = {c["mode"]: c for c in cells if c["network"] == net and c["workload"] == wl}
        ov, lz = by_mode.get("overlayfs"), by_mode.get("lazysnap")
        if not ov or ov.get("present_s") is None:
            continue
        touched = lz["bytes_down"] if lz else None
        n = _network(net)
        link = touched * 8 / n.bits_per_second if (touched and n and n.bits_per_second) else 0.0
        floor = ov["present_s"] + link
        cells.append({"network": net, "workload": wl, "mode": "floor", "n": ov["n"],
                      "total_med": floor, "total_min": floor, "total_max": floor,
                      "present_s": ov["present_s"], "link_s": link, "bytes_down": touched})
    for c in cells:
        same = {x["mode"]: x for x in cells
                if x["network"] == c["network"] and x["workload"] == c["workload"]}
        if "floor" in same and c["mode"] != "floor":
            c["x_floor"] = c["total_med"] / same["floor"]["total_med"]
        if "overlayfs" in same and c["mode"] not in ("floor",):
            c["speedup"] = same["overlayfs"]["total_med"] / c["total_med"]
    order = {m: i for i, m in enumerate(list(MODES) + ["floor"])}
    cells.sort(key=lambda c: (c["network"], c["workload"], order.get(c["mode"], 99)))
    return cells


def _f(v, fmt="{:.2f}", none="–"):
    return none if v is None else fmt.format(v)


def markdown(cells, notes, meta):
    out = [f"Cold start, from the start of the pull to the workload's ready line "
           f"({meta.get('date', '')}; {meta.get('host', '')}; median of {meta.get('runs')} "
           f"runs, [min–max]).", ""]
    nets = []
    for c in cells:
        if c["network"] not in nets:
            nets.append(c["network"])
    for net in nets:
        out += [f"### {net}", "",
                "| workload | mode | total s | pull s | create s | ready s | MB fetched | "
                "requests | × floor | vs overlayfs | snapshotter CPU s | peak RSS MB |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in (c for c in cells if c["network"] == net):
            if c["mode"] == "floor":
                mb = c.get("bytes_down")
                mb = "?" if mb is None else f"{mb / 1e6:.1f}"
                out.append(f"| {c['workload']} | *floor*: present {c['present_s']:.2f} s + {mb} MB "
                           f"at link speed {c['link_s']:.2f} s | {c['total_med']:.2f} | | | | | "
                           "| 1.00 | | | |")
                continue
            peak = c.get("snapshotter_peak_kb")
            out.append(
                f"| {c['workload']} | {c['mode']} | {c['total_med']:.2f} [{c['total_min']:.2f}–"
                f"{c['total_max']:.2f}] | {_f(c['pull_s'])} | {_f(c['create_s'])} | "
                f"{_f(c['ready_s'])} | {_f(c['bytes_down'] / 1e6 if c['bytes_down'] is not None else None, '{:.1f}')} | "
                f"{_f(c['requests'], '{:.0f}')} | {_f(c.get('x_floor'))} | "
                f"{_f(c.get('speedup'), '{:.1f}x')} | {_f(c.get('snapshotter_cpu_s'))} | "
                f"{_f(peak / 1024 if peak else None, '{:.0f}')} |")
        out.append("")
    if notes:
        out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    out.append(f"Command: `{meta.get('command', '')}`")
    return "\n".join(out) + "\n"


def write_csv(path, results):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in results:
            w.writerow(r)


def charts(out_dir, cells):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    nets = sorted({c["network"] for c in cells})
    for net in nets:
        cs = [c for c in cells if c["network"] == net]
        wls = sorted({c["workload"] for c in cs})
        modes = [m for m in MODES if any(c["mode"] == m for c in cs)]
        if not modes:
            continue
        fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(wls) * max(1, len(modes)) / 2, 4.2))
        width = 0.8 / len(modes)
        colors = {"pull_s": "#4477aa", "create_s": "#66ccee", "ready_s": "#ee6677"}
        for mi, m in enumerate(modes):
            for wi, wl in enumerate(wls):
                c = next((c for c in cs if c["workload"] == wl and c["mode"] == m), None)
                if not c:
                    continue
                x = wi + (mi - (len(modes) - 1) / 2) * width
                bottom = 0
                for k, col in colors.items():
                    v = c.get(k) or 0
                    ax.bar(x, v, width * 0.9, bottom=bottom, color=col,
                           label=k[:-2] if (mi == 0 and wi == 0) else None)
                    bottom += v
                ax.errorbar(x, c["total_med"], yerr=[[c["total_med"] - c["total_min"]],
                                                     [c["total_max"] - c["total_med"]]],
                            fmt="none", ecolor="black", capsize=2, lw=0.8)
                ax.annotate(m.replace("lazysnap-", "lz-"), (x, c["total_max"]), xytext=(0, 4),
                            textcoords="offset points", rotation=90, ha="center", va="bottom",
                            fontsize=7)
        for wi, wl in enumerate(wls):
            f = next((c for c in cs if c["workload"] == wl and c["mode"] == "floor"), None)
            if f:
                ax.hlines(f["total_med"], wi - 0.45, wi + 0.45, colors="black", linestyles="--",
                          lw=1, label="floor" if wi == 0 else None)
        ax.set_xticks(range(len(wls)), wls)
        ax.set_ylabel("seconds to ready (median; bars: min–max)")
        ax.set_title(f"cold start, {net}")
        ax.margins(y=0.25)
        ax.legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        path = os.path.join(out_dir, f"coldstart-{net}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def write_all(out_dir, results, notes, meta, charts_on=True):
    os.makedirs(out_dir, exist_ok=True)
    cells = summarize(results)
    write_csv(os.path.join(out_dir, "results.csv"), results)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(cells, f, indent=1)
    md = markdown(cells, notes, meta)
    if charts_on and cells:
        try:
            for p in charts(out_dir, cells):
                md += f"\n![{os.path.basename(p)}]({os.path.basename(p)})\n"
        except ImportError as e:
            notes.append(f"no charts: {e} (apt-get install python3-matplotlib)")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(md)
    return md
