"""Run a Milvus 2.3.5 standalone server in the foreground, reachable on loopback only.

    python -m atelier.stack.milvus_runner --base-dir DIR --port 19530 [--host 127.0.0.1]

The binary shipped in the `milvus` wheel is unpacked into DIR/bin and exec'd
directly with a generated DIR/configs/milvus.yaml; data lives in DIR/data.
Milvus logs go to stdout; embedded-etcd and C++ (glog) warnings to stderr.

Milvus 2.3.5 binds its gRPC servers and metrics server to the wildcard address
whatever `ip` says. So by default the runner moves itself and Milvus into a
private network namespace that has only `lo`, and forwards HOST:PORT (gRPC and
REST) and HOST:PORT+1 (/healthz, /metrics) into it; nothing else is visible
from the host. --share-network skips that (for hosts where unprivileged
namespaces are disabled) and leaves those listeners on *:PORT..PORT+11.

SIGTERM/SIGINT stop Milvus gracefully (SIGKILL after --stop-timeout) and exit
0; if Milvus exits by itself the runner exits non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import milvus

from atelier.stack import procfs

# Offsets from --port. index_coord is only written into the config (no server
# of its own in 2.3 standalone), but gets a slot so the layout stays fixed.
PORT_OFFSETS: dict[str, int] = {
    "proxy_port": 0,  # gRPC + REST API (what clients use)
    "metrics_port": 1,  # /healthz, /metrics (METRICS_PORT)
    "proxy_internal_port": 2,
    "etcd_port": 3,  # embedded etcd client URL
    "etcd_peer_port": 4,  # embedded etcd peer URL
    "root_coord_port": 5,
    "query_coord_port": 6,
    "data_coord_port": 7,
    "index_coord_port": 8,
    "query_node_port": 9,
    "data_node_port": 10,
    "index_node_port": 11,
}
FORWARDED = ("proxy_port", "metrics_port")

_PKG_DATA = Path(milvus.__file__).parent / "data"
_TEMPLATE_VAR = re.compile(r"\{\{\s*(\w+)\s*(?:\(\w+\))?\s*(?::\s*([^}]*?))?\s*\}\}")
# Every component has an "ip:" line; empty means "first unicast address".
_COMPONENT_IP = re.compile(r"^(\s+)ip:\s*#.*$", re.MULTILINE)

# C++ (segcore/knowhere) logging: the wheel's glog.conf writes files to ./logs.
_GLOG_CONF = "--logtostderr=true\n--minloglevel=1\n"

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def _log(msg: str) -> None:
    print(f"milvus_runner: {msg}", file=sys.stderr, flush=True)


def derive_ports(port: int) -> dict[str, int]:
    """All ports Milvus listens on, from the public (proxy) port.

    Without --share-network only FORWARDED ones are bound in the host's namespace.
    """
    return {name: port + offset for name, offset in PORT_OFFSETS.items()}


def _render_config(base: Path, host: str, ports: dict[str, int]) -> str:
    data = base / "data"
    values = {
        **{k: str(v) for k, v in ports.items()},
        "etcd_data_dir": str(data / "etcd.data"),
        "etcd_log_path": "stderr",
        "etcd_log_level": "warn",
        "local_storage_dir": str(data),
        "rocksmq_data_dir": str(data / "rocksmq"),
        "system_log_path": "",  # no log files: stdout only
    }
    template = (_PKG_DATA / "config.yaml.template").read_text(encoding="utf-8")
    text = _TEMPLATE_VAR.sub(lambda m: values.get(m.group(1), m.group(2) or ""), template)
    text = _COMPONENT_IP.sub(rf"\1ip: {host}", text)
    # "localhost" may resolve to ::1, where nothing listens.
    return text.replace("localhost:", f"{host}:")


def _render_etcd_config(host: str, ports: dict[str, int]) -> str:
    client = f"http://{host}:{ports['etcd_port']}"
    peer = f"http://{host}:{ports['etcd_peer_port']}"
    return (
        f"listen-client-urls: {client}\n"
        f"advertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\n"
        f"initial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n"
    )


def prepare(base: Path, host: str, ports: dict[str, int]) -> tuple[Path, dict[str, str]]:
    """Unpack the binary and write configs under base; return (exe, env)."""
    configs = base / "configs"
    for sub in (configs, base / "data"):
        sub.mkdir(parents=True, exist_ok=True)
    # Unpacks DIR/bin/* from the wheel's .lzma files (skipped when md5 matches).
    milvus._initialize_data_files(str(base))
    (configs / "milvus.yaml").write_text(_render_config(base, host, ports), encoding="utf-8")
    (configs / "etcd.yaml").write_text(_render_etcd_config(host, ports), encoding="utf-8")
    (configs / "glog.conf").write_text(_GLOG_CONF, encoding="utf-8")

    bin_dir = base / "bin"
    env = dict(os.environ)
    env.update(
        DEPLOY_MODE="STANDALONE",
        MILVUSCONF=str(configs),
        METRICS_PORT=str(ports["metrics_port"]),
        ETCD_CONFIG_PATH=str(configs / "etcd.yaml"),
        LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(bin_dir), env.get("LD_LIBRARY_PATH")])),
        # Milvus maps SECTION_KEY env vars onto section.key. In 2.3.5's graceful
        # stop the query node waits out this whole timeout (30 s by default), and
        # the coordinators sometimes hang outright: --stop-timeout is the backstop.
        # Acked inserts are in the rocksmq WAL and survive a SIGKILL.
        QUERYNODE_GRACEFULSTOPTIMEOUT="3",
    )
    return bin_dir / "milvus", env


def isolate_network() -> None:
    """Move this (still single-threaded) process into a new netns with only `lo` up."""
    uid, gid = os.geteuid(), os.getegid()
    # Without root, a user namespace is what grants CAP_NET_ADMIN over the new netns.
    flags = _CLONE_NEWNET if uid == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(network namespace): {os.strerror(err)}; try --share-network")
    if flags & _CLONE_NEWUSER:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    with socket.socket() as sock:
        ifreq = fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack("16sh22x", b"lo", 0))
        flags_now = struct.unpack("16sh22x", ifreq)[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags_now | _IFF_UP))


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _bridge(client: socket.socket, port: int) -> None:
    with client:
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return  # Milvus not listening yet; the client retries
        with upstream:
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # gRPC is latency-bound
            other_way = threading.Thread(target=_pipe, args=(client, upstream), daemon=True)
            other_way.start()
            _pipe(upstream, client)
            other_way.join()


def _forward(listener: socket.socket, port: int) -> None:
    """Accept on a host-namespace socket, relay each connection to 127.0.0.1:port here."""
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_bridge, args=(client, port), daemon=True).start()


def _die_with_parent() -> None:
    # Runs in the child before exec: if the runner is SIGKILLed, the kernel kills
    # Milvus too instead of orphaning it (SIGKILL: its graceful stop can hang).
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def session_pids(sid: int) -> list[int]:
    """Pids of all live processes in session sid (the Milvus process tree)."""
    return [p.pid for p in procfs.processes() if p.session == sid and p.alive]


def non_loopback_listeners(pids: list[int]) -> list[str]:
    """`ss -ltnp` lines of the given pids that listen on a non-loopback address."""
    if not shutil.which("ss"):
        return ["(ss not found; listener check skipped)"]
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=False).stdout
    wanted = {str(p) for p in pids}
    bad = []
    for line in dict.fromkeys(out.splitlines()):
        if not wanted & set(re.findall(r"pid=(\d+)", line)):
            continue
        local_host = line.split()[3].rsplit(":", 1)[0]
        if not (local_host.startswith("127.") or local_host == "[::1]"):
            bad.append(" ".join(line.split()))
    return bad


def _healthy(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=1) as resp:
            return b"OK" in resp.read()
    except OSError:
        return False


def wait_ready(host: str, port: int, timeout_s: float) -> None:
    """Block until pymilvus can connect and list collections, else TimeoutError."""
    from pymilvus import MilvusClient  # heavy (grpc); keep it out of the runner

    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        client = None
        try:
            client = MilvusClient(uri=f"http://{host}:{port}", timeout=max(1.0, deadline - time.monotonic()))
            client.list_collections()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = exc
            time.sleep(0.5)
        finally:
            if client is not None:
                client.close()
    raise TimeoutError(f"Milvus at {host}:{port} not ready after {timeout_s}s: {last_error}")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run(base: Path, host: str, port: int, stop_timeout: float, share_network: bool = False) -> int:
    """Run Milvus until it exits or we are signalled; return the exit code."""
    ports = derive_ports(port)
    # Host-side sockets must exist before we leave the host's network namespace.
    listeners = [] if share_network else [(_listen(host, ports[k]), ports[k]) for k in FORWARDED]
    if not share_network:
        try:
            isolate_network()
        except OSError as error:
            # Still serve, on the host network, rather than fail where namespaces are not allowed.
            _log(f"WARNING {error.strerror}: Milvus will share the host network")
            for listener, _ in listeners:
                listener.close()
            listeners, share_network = [], True
    milvus_host = host if share_network else "127.0.0.1"
    exe, env = prepare(base, milvus_host, ports)

    # A plain flag: Event.set() from a signal handler can deadlock with Event.wait().
    signals: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signals.append(signum))

    started = time.monotonic()
    # Own session: a terminal Ctrl-C reaches only us, and the whole tree can be
    # killed as one group. preexec_fn is safe here: no threads exist yet.
    proc = subprocess.Popen(
        [str(exe), "run", "standalone"],
        cwd=base,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    for listener, target in listeners:
        threading.Thread(target=_forward, args=(listener, target), daemon=True).start()
    mode = "shared host network" if share_network else f"private netns, forwarding {host}:{port},{port + 1}"
    _log(f"started milvus pid {proc.pid} ({mode}); ports {ports}")

    ready = False
    while not signals:
        if proc.poll() is not None:
            _kill_group(proc.pid)
            _log(f"milvus exited unexpectedly with code {proc.returncode}")
            return proc.returncode if proc.returncode > 0 else 1
        if not ready and _healthy(milvus_host, ports["metrics_port"]):
            ready = True
            _log(f"milvus healthy after {time.monotonic() - started:.1f}s")
            if share_network:
                for line in non_loopback_listeners(session_pids(proc.pid)):
                    _log(f"WARNING non-loopback listener: {line}")
        time.sleep(0.5)

    _log(f"got {signal.Signals(signals[0]).name}; stopping milvus")
    proc.terminate()
    try:
        proc.wait(timeout=stop_timeout)
    except subprocess.TimeoutExpired:
        _log(f"milvus did not stop within {stop_timeout}s; killing it")
    _kill_group(proc.pid)  # also takes out anything Milvus itself left behind
    proc.wait()
    # 2.3.5 panics in CloseEtcdClient after its cleanup is done, so a nonzero code here is expected.
    _log(f"milvus stopped (exit code {proc.returncode})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-dir", required=True, type=Path, help="binaries, configs and data live here")
    parser.add_argument("--port", type=int, default=19530, help="client port; Milvus also uses PORT+1..PORT+11")
    parser.add_argument("--host", default="127.0.0.1", help="address the exposed ports bind to")
    parser.add_argument("--stop-timeout", type=float, default=10.0, help="seconds before SIGKILL on stop")
    parser.add_argument(
        "--share-network",
        action="store_true",
        help="no private netns: Milvus gRPC/metrics listeners end up on the wildcard address",
    )
    args = parser.parse_args(argv)
    return run(args.base_dir.resolve(), args.host, args.port, args.stop_timeout, args.share_network)


if __name__ == "__main__":
    sys.exit(main())
