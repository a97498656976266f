"""One measured cold start: fresh containerd (and lazysnapd / stargz) state, page cache dropped,
pull, create, start until the ready line; the registry's bytes and requests (from the shaper and
the registry's access log) and the snapshotter's CPU time and peak memory."""

import os
import re
import shutil
import subprocess
import threading
import time

from env import (BenchError, Cleanups, Containerd, Lazysnapd, StargzGrpc, drop_caches, kill,
                 log)


def _run(cmd, timeout=600, what=None):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what or cmd[0]} timed out after {timeout} s")
    if p.returncode != 0:
        raise BenchError(f"{what or cmd[0]} failed ({p.returncode}): "
                         f"{(p.stderr or p.stdout).strip()[-600:]}")
    return p.stdout


def start_until_ready(ctr, cid, ready_re, timeout):
    """`ctr task start CID`: returns (seconds to the ready line, output). Waits for the task to
    exit (it is killed after `timeout`)."""
    proc = subprocess.Popen(ctr + ["task", "start", cid], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    ready = threading.Event()
    lines = []
    ready_at = []
    pat = re.compile(ready_re)

    def reader():
        for line in proc.stdout:
            lines.append(line)
            if not ready.is_set() and pat.search(line.rstrip("\n")):
                ready_at.append(time.monotonic())
                ready.set()
        ready.set()  # EOF without the line: wakes the waiter

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    ready.wait(timeout)
    try:
        proc.wait(timeout=60 if ready_at else 5)
    except subprocess.TimeoutExpired:
        kill(proc, grace=2)
    th.join(5)
    out = "".join(lines)
    if not ready_at:
        raise BenchError(f"{cid}: no ready line ({ready_re!r}); output: {out.strip()[-600:]}")
    return ready_at[0] - t0, out


class Context:
    """What every run shares: tools, registry, the shaper of the current network, options."""

    def __init__(self, tools, registry, workdir, pull_cmd):
        self.tools = tools            # dict: lazysnap, lazysnapd, stargz_grpc (or None)
        self.registry = registry
        self.workdir = workdir
        self.pull_cmd = pull_cmd      # function(ctx, containerd, ref, snapshotter) -> argv
        self.shaper = None
        self.network = None
        self.prefetch = ()            # extra [prefetch] lines for lazysnapd (--prefetch-config)
        self.keep_logs = None         # directory: lazysnapd's log of every run is copied there


def measure(ctx, workload, mode, ref, run_id, present=False, seed_root=None, keep_traces=None):
    """One cold start. Returns a dict of figures. `present`: afterwards, also time a start from
    the image already unpacked (the floor; overlayfs only). `seed_root(root)`: called with the
    fresh lazysnapd root before lazysnapd starts, outside the measured window (puts the trace
    there). `keep_traces`: copy lazysnapd's traces out to this directory after the run (a
    recording run)."""
    wd = os.path.join(ctx.workdir, f"run-{run_id}")
    os.makedirs(wd)
    cleanups = Cleanups()
    # Unique on the machine: runc keeps its state per namespace and ID for every containerd
    # (/run/containerd/runc/bench/ID, the cgroup /bench/ID), so IDs must not repeat across
    # concurrent harnesses.
    cid = f"{workload.name}-{mode.name}-{run_id}-{os.getpid()}"
    res = {"workload": workload.name, "mode": mode.name, "network": ctx.network.name}
    try:
        proxies = {}
        daemon = None
        if mode.snapshotter == "lazysnap":
            if seed_root:
                root = os.path.join(wd, "lazysnapd", "root")
                os.makedirs(root, exist_ok=True)
                seed_root(root)
            daemon = Lazysnapd(ctx.tools["lazysnapd"], wd, cleanups, prefetch=ctx.prefetch)
            if ctx.keep_logs:
                # Copied after lazysnapd stops (the cleanup below runs first: newest first), so
                # the log has its per-layer figures written at unmount.
                dst = os.path.join(ctx.keep_logs, f"{cid}.lazysnapd.log")
                cleanups.add(lambda: (os.makedirs(ctx.keep_logs, exist_ok=True),
                                      shutil.copyfile(daemon.log_path, dst)))
                cleanups.add(lambda: kill(daemon.proc))
            proxies["lazysnap"] = daemon.sock
        elif mode.snapshotter == "stargz":
            daemon = StargzGrpc(ctx.tools["stargz_grpc"], wd, cleanups, ctx.shaper.addr)
            proxies["stargz"] = daemon.sock
        ctd = Containerd(wd, proxies, cleanups)
        ctr = ctd.ctr
        drop_caches()
        s0 = ctx.shaper.stats()
        r0 = ctx.registry.log_offset()
        cpu0 = daemon.cpu_seconds() if daemon else None

        t0 = time.monotonic()
        _run(ctx.pull_cmd(ctx, ctd, ref, mode), timeout=workload.timeout, what="pull")
        t1 = time.monotonic()
        snap = [] if mode.snapshotter == "overlayfs" else ["--snapshotter", mode.snapshotter]
        _run(ctr + ["container", "create"] + snap + ["--", ref, cid] + list(workload.cmd),
             what="container create")
        t2 = time.monotonic()
        ready_s, _ = start_until_ready(ctr, cid, workload.ready, workload.timeout)
        s1 = ctx.shaper.stats()
        requests, blob_requests = ctx.registry.requests_since(r0)
        res.update(pull_s=t1 - t0, create_s=t2 - t1, ready_s=ready_s,
                   total_s=t2 - t0 + ready_s,
                   bytes_down=s1["bytes_down"] - s0["bytes_down"],
                   bytes_up=s1["bytes_up"] - s0["bytes_up"],
                   connections=s1["connections"] - s0["connections"],
                   requests=requests, blob_requests=blob_requests)
        if daemon:
            cpu1 = daemon.cpu_seconds()
            res["snapshotter_cpu_s"] = cpu1 - cpu0 if cpu1 is not None else None
            res["snapshotter_peak_kb"] = daemon.peak_rss_kb()
        _run(ctr + ["container", "rm", cid], what="container rm")
        if present:
            # The floor's first part: the same workload with the image already unpacked.
            drop_caches()
            t0 = time.monotonic()
            _run(ctr + ["container", "create"] + snap + ["--", ref, cid + "-present"] +
                 list(workload.cmd), what="container create")
            t1 = time.monotonic()
            ready_s, _ = start_until_ready(ctr, cid + "-present", workload.ready,
                                           workload.timeout)
            res["present_s"] = t1 - t0 + ready_s
        if keep_traces is not None and daemon is not None:
            kill(daemon.proc)  # traces are flushed when the daemon stops, at the latest
            src = os.path.join(daemon.root, "traces")
            if os.path.isdir(src) and os.listdir(src):
                shutil.copytree(src, keep_traces, dirs_exist_ok=True)
        return res
    finally:
        cleanups.run()
        shutil.rmtree(wd, ignore_errors=True)


def describe(res):
    extra = f", present {res['present_s']:.2f} s" if "present_s" in res else ""
    return (f"{res['workload']} {res['mode']} {res['network']}: {res['total_s']:.2f} s "
            f"(pull {res['pull_s']:.2f}, create {res['create_s']:.2f}, "
            f"ready {res['ready_s']:.2f}), {res['bytes_down'] / 1e6:.1f} MB, "
            f"{res['requests']} requests{extra}")


def log_result(res):
    log(describe(res))
