"""Workloads (image, command, ready signal), modes (image variant, snapshotter, how it is pulled)
and network presets of the cold-start benchmark."""

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    image: str        # ls_workload_image NAME (scripts/lib.sh)
    cmd: tuple        # the container's command
    ready: str        # a regex: the output line that means "ready"
    timeout: float = 300


_HELLO_C = r'#include <stdio.h>\nint main(void) { puts("hello from gcc"); return 0; }\n'

_PG = ("mkdir -p /run/postgresql && chown postgres:postgres /run/postgresql && "
       "su postgres -s /bin/sh -c '/usr/lib/postgresql/15/bin/pg_ctl -w -t 120 "
       "-D /var/lib/postgresql/15/main -l /tmp/pg.log "
       "-o \"-c config_file=/etc/postgresql/15/main/postgresql.conf -c listen_addresses=\" start' "
       ">/dev/null && pg_isready -h /run/postgresql && "
       "su postgres -s /bin/sh -c 'psql -h /run/postgresql -tAc \"select 40 + 2\"'")

WORKLOADS = {
    "python": Workload("python", "python", ("python3", "-c", 'print("hello")'), r"^hello$"),
    "gcc": Workload("gcc", "gcc", (
        "sh", "-c", f"printf '{_HELLO_C}' >/tmp/hello.c && gcc -O2 -o /tmp/hello /tmp/hello.c "
        "&& /tmp/hello"), r"^hello from gcc$"),
    "postgres": Workload("postgres", "postgres", ("sh", "-c", _PG), r"^42$"),
    "numpy": Workload("numpy", "numpy", (
        "python3", "-c",
        "import numpy, scipy, scipy.linalg, scipy.sparse; "
        "print('numpy', numpy.linalg.det(numpy.eye(3)) + scipy.linalg.norm([3, 4]))"),
        r"^numpy 6\.0$"),
}


@dataclasses.dataclass(frozen=True)
class Mode:
    name: str
    variant: str       # which pushed image: gzip, esgz or opt
    snapshotter: str   # overlayfs, lazysnap or stargz
    lazy: bool         # pulled with rpull / lazysnap image pull
    trace: bool = False
    help: str = ""


MODES = {
    "overlayfs": Mode("overlayfs", "gzip", "overlayfs", False,
                      help="containerd's overlayfs: ctr image pull (full pull and unpack)"),
    "lazysnap": Mode("lazysnap", "esgz", "lazysnap", True,
                     help="lazysnap on demand: eStargz from `lazysnap image convert`"),
    "lazysnap-trace": Mode("lazysnap-trace", "esgz", "lazysnap", True, trace=True,
                           help="lazysnap with an access trace recorded by a first run"),
    "lazysnap-optimized": Mode("lazysnap-optimized", "opt", "lazysnap", True,
                               help="lazysnap, image from `lazysnap image optimize`"),
    "stargz": Mode("stargz", "esgz", "stargz", True,
                   help="stargz-snapshotter (containerd-stargz-grpc) on the same eStargz image"),
}


@dataclasses.dataclass(frozen=True)
class Network:
    name: str
    rate: str               # lazysnap-shaper --rate
    rtt: str                # lazysnap-shaper --rtt
    bits_per_second: float  # 0: unlimited


NETWORKS = {
    "loopback": Network("loopback", "unlimited", "0", 0),
    "1gbit-2ms": Network("1gbit-2ms", "1gbit", "2ms", 1e9),
    "100mbit-20ms": Network("100mbit-20ms", "100mbit", "20ms", 100e6),
    "20mbit-50ms": Network("20mbit-50ms", "20mbit", "50ms", 20e6),
}


def parse_network(text):
    """A preset name, or RATE-RTT such as 50mbit-10ms."""
    if text in NETWORKS:
        return NETWORKS[text]
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg])bit-(\d+(?:\.\d+)?)ms", text)
    if not m:
        raise ValueError(f"unknown network '{text}' (presets: {', '.join(NETWORKS)}; "
                         "or RATE-RTT like 50mbit-10ms)")
    bps = float(m.group(1)) * {"k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]
    return Network(text, f"{m.group(1)}{m.group(2)}bit", f"{m.group(3)}ms", bps)
