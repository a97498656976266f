#!/usr/bin/python3
"""lazysnap cold-start benchmark: time from the start of a pull to a workload's "ready" line,
for containerd's overlayfs and lazysnap's modes, with the registry behind lazysnap-shaper.
Every run starts from fresh state (new containerd / lazysnapd roots, page cache dropped).
Writes results.json, results.csv, report.md and PNG charts to --out. Needs root.
Entry points: `lazysnap bench [ARGS]` or `python3 bench/coldstart/coldstart.py [ARGS]`;
docs/benchmarks.md has the figures and the commands that made them."""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402
import runner  # noqa: E402
from env import BenchError, Cleanups, Registry, Shaper, log  # noqa: E402
from workloads import MODES, NETWORKS, WORKLOADS, parse_network  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(ROOT, "scripts", "lib.sh")


def lib(fn, *args, build=None):
    """Runs a scripts/lib.sh function; returns its stdout (stripped)."""
    env = dict(os.environ)
    if build:
        env["LAZYSNAP_BUILD_DIR"] = build
    p = subprocess.run(["bash", "-c", f'source "{LIB}"; {fn} "$@"', "lib", *args],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise BenchError(f"{fn} failed: {p.stderr.strip()[-1000:]}")
    return p.stdout.strip()


def ok(cmd):
    return subprocess.run(cmd, capture_output=True).returncode == 0


def help_text(cmd):
    p = subprocess.run(cmd + ["--help"], capture_output=True, text=True)
    return p.stdout + p.stderr if p.returncode == 0 else None


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="lazysnap bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="python,gcc",
                    help=f"comma-separated: {', '.join(WORKLOADS)} (default python,gcc)")
    ap.add_argument("--modes", default="overlayfs,lazysnap,lazysnap-trace,lazysnap-optimized",
                    help=f"comma-separated: {', '.join(MODES)}; modes whose tools are missing "
                    "are skipped with a note (stargz needs --stargz-grpc)")
    ap.add_argument("--networks", default="loopback,100mbit-20ms",
                    help=f"comma-separated presets ({', '.join(NETWORKS)}) or RATE-RTT")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per cell (default 3)")
    ap.add_argument("--out", help="output directory (default bench-results/<time>)")
    ap.add_argument("--build", default=os.environ.get("LAZYSNAP_BUILD_DIR",
                                                      os.path.join(ROOT, "build")),
                    help="lazysnap build directory (built if the tools are missing)")
    ap.add_argument("--stargz-grpc", metavar="PATH",
                    help="containerd-stargz-grpc binary: adds the stargz mode")
    ap.add_argument("--smoke", action="store_true",
                    help="CI smoke: python, 1 run, loopback, overlayfs and lazysnap")
    # lazysnap image pull by default: at 100 Mbit/s, 20 ms its pull phase is 0.23-0.26 s
    # against ctr-remote's 0.26-0.30 (it gives lazysnapd the manifest digest and every layer
    # annotation, so no tag resolution), and no slower on loopback (docs/benchmarks.md).
    ap.add_argument("--lazy-pull", choices=("ctr-remote", "lazysnap"), default="lazysnap",
                    help="how lazysnap modes pull: `lazysnap image pull` (default) or "
                    "`ctr-remote image rpull --snapshotter lazysnap` (the stargz mode always "
                    "pulls with ctr-remote)")
    ap.add_argument("--prefetch-config", metavar="K=V,...", default="",
                    help="extra lines for lazysnapd's [prefetch] table, e.g. "
                    "max_gap_bytes=65536,workers=4 (experiments; noted in the report)")
    ap.add_argument("--convert-args", metavar="ARGS", default="",
                    help="extra arguments of `lazysnap image convert` for the lazysnap modes' "
                    "image, e.g. '--chunk-size 64KiB' or '--format zstd-chunked' (noted in "
                    "the report; the floor is computed from the same image)")
    ap.add_argument("--keep-logs", action="store_true",
                    help="copy lazysnapd's log of every run to OUT/logs/ and the recorded "
                    "traces to OUT/traces/")
    ap.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    ap.add_argument("--render", metavar="DIR",
                    help="only write the report and charts again from DIR/results.json")
    a = ap.parse_args(argv)
    if a.smoke:
        a.workloads, a.modes, a.networks, a.runs = "python", "overlayfs,lazysnap", "loopback", 1
    a.workloads = [WORKLOADS[w] for w in a.workloads.split(",")]
    a.modes = a.modes.split(",")
    if a.stargz_grpc and "stargz" not in a.modes:
        a.modes.append("stargz")
    for m in a.modes:
        if m not in MODES:
            ap.error(f"unknown mode {m}")
    a.networks = [parse_network(n) for n in a.networks.split(",")]
    if not a.out:
        a.out = os.path.join("bench-results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    return a


class Bench:
    def __init__(self, args, workdir, cleanups):
        self.a = args
        self.workdir = workdir
        self.cleanups = cleanups
        self.notes = []
        self.results = []
        b = args.build
        self.tools = {"lazysnap": os.path.join(b, "cmd", "lazysnap"),
                      "lazysnapd": os.path.join(b, "cmd", "lazysnapd", "lazysnapd"),
                      "shaper": os.path.join(b, "bench", "shaper", "lazysnap-shaper"),
                      "stargz_grpc": args.stargz_grpc}

    def note(self, text):
        log(f"note: {text}")
        self.notes.append(text)

    def prepare_tools(self):
        missing = [k for k in ("lazysnap", "lazysnapd", "shaper") if not os.access(self.tools[k], os.X_OK)]
        if missing:
            log(f"building lazysnap, lazysnapd, lazysnap-shaper in {self.a.build}")
            lib("ls_build", "lazysnap", "lazysnapd", "lazysnap-shaper", build=self.a.build)
        lz = [self.tools["lazysnap"]]
        self.modes = []
        for m in self.a.modes:
            if m == "lazysnap-optimized" and "lazysnap image optimize" not in (
                    help_text(lz + ["image", "optimize"]) or ""):
                self.note("lazysnap-optimized skipped: `lazysnap image optimize` is not in this build")
                continue
            if m == "stargz" and not (self.tools["stargz_grpc"] and os.access(self.tools["stargz_grpc"], os.X_OK)):
                self.note("stargz skipped: no containerd-stargz-grpc binary (--stargz-grpc PATH)")
                continue
            self.modes.append(MODES[m])
        self.lazysnap_pull = False
        if self.a.lazy_pull == "lazysnap":
            h = help_text(lz + ["image", "pull"])
            self.lazysnap_pull = h is not None and all(
                f in h for f in ("--plain-http", "--address", "--namespace"))
            if not self.lazysnap_pull:
                self.note("`lazysnap image pull` (with --address, --namespace, --plain-http) is "
                          "not in this build: lazy pulls use `ctr-remote image rpull`")
        if self.a.convert_args:
            self.note(f"lazysnap images converted with `lazysnap image convert "
                      f"{self.a.convert_args}`")
        self.note("lazy pulls use " + ("`lazysnap image pull`" if self.lazysnap_pull else
                                       "`ctr-remote image rpull --snapshotter lazysnap`"))

    def pull_cmd(self, ctx, ctd, ref, mode):
        if not mode.lazy:
            return ctd.ctr + ["images", "pull", "--plain-http", ref]
        if mode.snapshotter == "lazysnap" and self.lazysnap_pull:
            return [self.tools["lazysnap"], "image", "pull", "--address", ctd.sock,
                    "--namespace", "bench", "--plain-http", ref]
        return ["ctr-remote", "-a", ctd.sock, "-n", "bench", "images", "rpull", "--plain-http",
                "--snapshotter", mode.snapshotter, ref]

    def push_images(self, registry):
        """Pushes each workload's variants to the (unshaped) registry: gzip as built, esgz
        converted by lazysnap, opt by lazysnap image optimize when that mode runs."""
        variants = {m.variant for m in self.modes}
        for w in self.a.workloads:
            layout = lib("ls_workload_image", w.image, build=self.a.build)
            src = f"{registry.addr}/{w.name}"
            log(f"pushing {w.name} ({', '.join(sorted(variants))})")
            runner._run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                         f"oci:{layout}:{w.image}", f"docker://{src}:gzip"], what="skopeo copy")
            if variants & {"esgz", "opt"}:
                runner._run([self.tools["lazysnap"], "image", "convert", "-q", "--plain-http"] +
                            self.a.convert_args.split() + [f"{src}:gzip", f"{src}:esgz"],
                            what="lazysnap image convert")
            if "opt" in variants:
                try:
                    runner._run([self.tools["lazysnap"], "image", "optimize", "--plain-http",
                                 f"{src}:gzip", f"{src}:opt", "--"] + list(w.cmd),
                                what="lazysnap image optimize")
                except BenchError as e:
                    self.note(f"lazysnap-optimized skipped for {w.name}: {e}")
                    self.skip.add((w.name, "lazysnap-optimized"))

    def run(self):
        self.prepare_tools()
        self.skip = set()
        registry = Registry(self.workdir, self.cleanups)
        self.push_images(registry)
        ctx = runner.Context(self.tools, registry, self.workdir, self.pull_cmd)
        ctx.prefetch = tuple(f"{k.strip()} = {v.strip()}" for k, v in
                             (kv.split("=", 1) for kv in self.a.prefetch_config.split(",") if kv))
        if ctx.prefetch:
            self.note("lazysnapd [prefetch] " + ", ".join(ctx.prefetch))
        if self.a.keep_logs:
            ctx.keep_logs = os.path.abspath(os.path.join(self.a.out, "logs"))
        traces = {}
        run_id = 0
        for net in self.a.networks:
            shaper = Shaper(self.tools["shaper"], self.workdir, registry.port, net.rate, net.rtt,
                            self.cleanups)
            ctx.shaper, ctx.network = shaper, net
            for w in self.a.workloads:
                for mode in self.modes:
                    if mode.trace and w.name not in traces and (w.name, mode.name) not in self.skip:
                        run_id += 1
                        traces[w.name] = self.record_trace(ctx, w, mode, run_id)
                for i in range(self.a.runs):
                    for mode in self.modes:
                        if (w.name, mode.name) in self.skip:
                            continue
                        run_id += 1
                        ref = f"{shaper.addr}/{w.name}:{mode.variant}"
                        try:
                            res = runner.measure(ctx, w, mode, ref, run_id,
                                                 present=(mode.name == "overlayfs"),
                                                 seed_root=traces.get(w.name) if mode.trace else None)
                        except BenchError as e:
                            self.note(f"{w.name} {mode.name} {net.name} run {i + 1} failed: {e}")
                            continue
                        res["run"] = i + 1
                        runner.log_result(res)
                        self.results.append(res)
                        self.save()

    def record_trace(self, ctx, w, mode, run_id):
        d = os.path.join(self.workdir, f"traces-{w.name}", "rec", "traces")
        ref = f"{ctx.shaper.addr}/{w.name}:{mode.variant}"
        log(f"{w.name}: recording run for {mode.name}")
        try:
            runner.measure(ctx, w, MODES["lazysnap"], ref, run_id, keep_traces=d)
        except BenchError as e:
            self.note(f"{mode.name} skipped for {w.name}: the recording run failed: {e}")
            self.skip.add((w.name, mode.name))
            return None
        if not os.path.isdir(d):
            self.note(f"{mode.name} skipped for {w.name}: lazysnapd recorded no trace "
                      "(trace recording is not in this build)")
            self.skip.add((w.name, mode.name))
            return None
        if self.a.keep_logs:
            shutil.copytree(d, os.path.join(self.a.out, "traces", w.name), dirs_exist_ok=True)
        # Publish it as other nodes get it: `lazysnap trace push` to the registry, and before each
        # measured run `lazysnap trace pull` into the fresh root (outside the measured window).
        lz = self.tools["lazysnap"]
        try:
            runner._run([lz, "trace", "push", "--root", os.path.dirname(d),
                         "--plain-http", f"{ctx.registry.addr}/{w.name}:{mode.variant}"],
                        what="lazysnap trace push")
        except BenchError as e:
            self.note(f"{w.name}: `lazysnap trace push` failed ({e}); the trace is copied into "
                      "each fresh lazysnapd root instead")
            return lambda root: shutil.copytree(d, os.path.join(root, "traces"))

        def pull(root):
            runner._run([lz, "trace", "pull", "--root", root, "--plain-http",
                         f"{ctx.registry.addr}/{w.name}:{mode.variant}"], what="lazysnap trace pull")
        return pull

    def save(self):
        os.makedirs(self.a.out, exist_ok=True)
        report.write_json(os.path.join(self.a.out, "results.json"), self.results, self.notes,
                          self.meta())

    def meta(self):
        u = os.uname()
        return {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
                "host": f"{u.sysname} {u.release}, {os.cpu_count()} CPUs",
                "runs": self.a.runs,
                "command": "lazysnap bench " + " ".join(sys.argv[1:])}


def render(out_dir, charts_on):
    with open(os.path.join(out_dir, "results.json")) as f:
        data = json.load(f)
    print(report.write_all(out_dir, data["runs"], data["notes"], data["meta"],
                           charts_on=charts_on))
    return 0


def main(argv):
    args = parse_args(argv)
    if args.render:
        return render(args.render, not args.no_charts)
    if os.geteuid() != 0:
        print("lazysnap bench: needs root (containerd, FUSE, overlay, drop_caches)", file=sys.stderr)
        return 2
    for tool in ("containerd", "ctr", "ctr-remote", "runc", "skopeo", "docker-registry"):
        if shutil.which(tool) is None:
            print(f"lazysnap bench: {tool} is not installed (scripts/setup)", file=sys.stderr)
            return 2
    workdir = tempfile.mkdtemp(prefix="ls-bench.", dir="/tmp")
    cleanups = Cleanups()
    cleanups.add(lambda: shutil.rmtree(workdir, ignore_errors=True))
    bench = Bench(args, workdir, cleanups)
    try:
        bench.run()
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        cleanups.run()
    bench.save()
    summary = report.write_all(args.out, bench.results, bench.notes, bench.meta(),
                               charts_on=not args.no_charts)
    print(summary)
    log(f"results in {args.out}")
    return 0 if bench.results else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
