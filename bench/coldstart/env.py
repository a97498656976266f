"""The components a cold-start run needs, each started here with its own state in a private
temporary directory, on free loopback ports and unix sockets: docker-registry (access log on,
to count requests), lazysnap-shaper in front of it, containerd, lazysnapd and (optionally)
containerd-stargz-grpc. Every start registers its cleanup with a Cleanups stack."""

import json
import os
import re
import signal
import socket
import subprocess
import time


class BenchError(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(seconds, pred, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise BenchError(f"timed out waiting for {what}")


def kill(proc, grace=10):
    """TERM, then KILL after `grace` seconds; reaps. Only for processes we started."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def umount_below(path):
    """Unmounts everything mounted at or below `path`, deepest first."""
    out = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    mounts = [m for m in out.split("\n") if m == path or m.startswith(path.rstrip("/") + "/")]
    for m in sorted(mounts, reverse=True):
        if subprocess.run(["umount", m], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", m], capture_output=True)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def proc_cpu_seconds(pid):
    """utime + stime of a live process, in seconds (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def proc_peak_rss_kb(pid):
    """VmHWM of a live process in KiB (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Cleanups:
    """A stack of cleanup callables, run newest first."""

    def __init__(self):
        self._fns = []

    def add(self, fn):
        self._fns.append(fn)

    def run(self):
        while self._fns:
            fn = self._fns.pop()
            try:
                fn()
            except Exception as e:  # a cleanup failing must not stop the others
                log(f"cleanup: {e}")


class Registry:
    """docker-registry with its own storage; the access log counts requests."""

    def __init__(self, workdir, cleanups):
        self.dir = os.path.join(workdir, "registry")
        os.makedirs(os.path.join(self.dir, "storage"), exist_ok=True)
        self.log_path = os.path.join(self.dir, "registry.log")
        for _ in range(3):
            self.port = free_port()
            with open(os.path.join(self.dir, "registry.yml"), "w") as f:
                f.write(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {self.dir}/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{self.port}
""")
            logf = open(self.log_path, "ab")
            self.proc = subprocess.Popen(["docker-registry", "serve", f"{self.dir}/registry.yml"],
                                         stdout=logf, stderr=subprocess.STDOUT)
            logf.close()
            cleanups.add(lambda p=self.proc: kill(p))
            try:
                wait_for(20, self._up, "docker-registry")
                self.addr = f"127.0.0.1:{self.port}"
                log(f"docker-registry on {self.addr}")
                return
            except BenchError:
                kill(self.proc)
        raise BenchError("docker-registry did not start")

    def _up(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def log_offset(self):
        return os.path.getsize(self.log_path)

    _REQ = re.compile(rb'"(GET|HEAD) /v2/\S+ HTTP/[0-9.]+" (\d+) ')

    def requests_since(self, offset):
        """(requests, blob requests) logged after `offset` (from log_offset())."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            data = f.read()
        reqs = self._REQ.findall(data)
        blobs = len(re.findall(rb'"GET /v2/\S+/blobs/sha256:', data))
        return len(reqs), blobs


class Shaper:
    """lazysnap-shaper in front of `upstream_port` (rate 'unlimited' and rtt '0' for loopback:
    the same proxy for every preset, so every mode goes through the same path). The rate is
    aggregate (one link shared by every connection), so a client cannot buy bandwidth by
    opening more connections; the RTT applies to each connection."""

    def __init__(self, binary, workdir, upstream_port, rate, rtt, cleanups):
        self.dir = os.path.join(workdir, f"shaper-{rate}-{rtt}")
        os.makedirs(self.dir, exist_ok=True)
        self.stats_path = os.path.join(self.dir, "stats.json")
        with open(os.path.join(self.dir, "shaper.log"), "ab") as logf:
            self.proc = subprocess.Popen(
                [binary, "--upstream", f"127.0.0.1:{upstream_port}", "--rate", rate, "--rtt", rtt,
                 "--aggregate", "--stats-file", self.stats_path],
                stdout=subprocess.PIPE, stderr=logf)
        cleanups.add(lambda p=self.proc: kill(p))
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            raise BenchError("lazysnap-shaper did not start")
        self.port = int(line)
        self.addr = f"127.0.0.1:{self.port}"
        wait_for(5, lambda: os.path.exists(self.stats_path), "shaper stats")
        log(f"lazysnap-shaper on {self.addr} ({rate}, rtt {rtt})")

    def stats(self):
        # The shaper rewrites the file every 100 ms while counters change: wait for two reads in
        # a row to agree, so the counts include everything forwarded so far.
        prev = None
        for _ in range(20):
            with open(self.stats_path) as f:
                cur = json.load(f)
            if cur == prev:
                return cur
            prev = cur
            time.sleep(0.12)
        return prev


class Containerd:
    """containerd with its own root, state and socket; `proxies` maps a snapshotter name to the
    unix socket of a proxy snapshotter."""

    def __init__(self, workdir, proxies, cleanups):
        self.dir = os.path.join(workdir, "containerd")
        for d in ("root", "state", "opt"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.sock = os.path.join(self.dir, "c.sock")
        cfg = f"""version = 2
root = "{self.dir}/root"
state = "{self.dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.dir}/opt"
"""
        for name, sock in proxies.items():
            cfg += f'[proxy_plugins.{name}]\n  type = "snapshot"\n  address = "{sock}"\n'
        with open(os.path.join(self.dir, "config.toml"), "w") as f:
            f.write(cfg)
        with open(os.path.join(self.dir, "containerd.log"), "ab") as logf:
            self.proc = subprocess.Popen(["containerd", "--config", f"{self.dir}/config.toml"],
                                         stdout=logf, stderr=subprocess.STDOUT)
        cleanups.add(lambda: (kill(self.proc), umount_below(self.dir)))
        self.ctr = ["ctr", "-a", self.sock, "-n", "bench"]
        wait_for(30, lambda: subprocess.run(["ctr", "-a", self.sock, "version"],
                                            capture_output=True).returncode == 0, "containerd")


class Lazysnapd:
    """`prefetch`: extra `KEY = VALUE` lines for its [prefetch] table (--prefetch-config)."""

    def __init__(self, binary, workdir, cleanups, name="lazysnapd", prefetch=()):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.root = os.path.join(self.dir, "root")
        self.sock = os.path.join(self.dir, "lz.sock")
        self.log_path = os.path.join(self.dir, "lazysnapd.log")
        os.makedirs(os.path.join(self.dir, "certs.d"), exist_ok=True)
        with open(os.path.join(self.dir, "config.toml"), "w") as f:
            # [prefetch] registry_lookup off: a node gets a trace only as a run seeds it
            # (`lazysnap trace pull` before start); the registry holds the pushed trace, which
            # an on-demand (no trace) run must not find by itself.
            # LAZYSNAP_BENCH_LOG_LEVEL=debug: one line per HTTP exchange and gRPC call (timing).
            level = os.environ.get("LAZYSNAP_BENCH_LOG_LEVEL", "info")
            f.write(f'root = "{self.root}"\naddress = "{self.sock}"\nlog_level = "{level}"\n'
                    f'[registry]\nconfig_path = "{self.dir}/certs.d"\n'
                    f'[prefetch]\nregistry_lookup = false\n' +
                    "".join(f"{line}\n" for line in prefetch))
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen([binary, "--config", f"{self.dir}/config.toml"],
                                         stdout=logf, stderr=subprocess.STDOUT)
        cleanups.add(lambda: (kill(self.proc), umount_below(self.dir)))
        wait_for(60, lambda: self.proc.poll() is not None or
                 b"lazysnapd serving on" in open(self.log_path, "rb").read(), "lazysnapd")
        if self.proc.poll() is not None:
            raise BenchError(f"lazysnapd exited; see {self.log_path}")

    def cpu_seconds(self):
        return proc_cpu_seconds(self.proc.pid)

    def peak_rss_kb(self):
        return proc_peak_rss_kb(self.proc.pid)


class StargzGrpc:
    """containerd-stargz-grpc (stargz-snapshotter), when a binary is named."""

    def __init__(self, binary, workdir, cleanups, registry_addr):
        self.dir = os.path.join(workdir, "stargz")
        os.makedirs(self.dir, exist_ok=True)
        self.root = os.path.join(self.dir, "root")
        self.sock = os.path.join(self.dir, "stargz.sock")
        with open(os.path.join(self.dir, "config.toml"), "w") as f:
            # Plain HTTP to the (shaped) loopback registry.
            f.write(f'[[resolver.host."{registry_addr}".mirrors]]\n'
                    f'host = "{registry_addr}"\ninsecure = true\n')
        with open(os.path.join(self.dir, "stargz.log"), "ab") as logf:
            self.proc = subprocess.Popen(
                [binary, "--root", self.root, "--address", self.sock,
                 "--config", f"{self.dir}/config.toml", "--log-level", "info"],
                stdout=logf, stderr=subprocess.STDOUT)
        cleanups.add(lambda: (kill(self.proc), umount_below(self.dir)))
        wait_for(60, lambda: self.proc.poll() is not None or os.path.exists(self.sock),
                 "containerd-stargz-grpc")
        if self.proc.poll() is not None:
            raise BenchError("containerd-stargz-grpc exited")

    def cpu_seconds(self):
        return proc_cpu_seconds(self.proc.pid)

    def peak_rss_kb(self):
        return proc_peak_rss_kb(self.proc.pid)
