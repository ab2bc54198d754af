"""The data disk's durable-write rate: 300 appends of 4 KiB to a new file
in DIR, each followed by fdatasync. Prints one JSON object; with --machine,
also the CPU, cores, memory and kernel.

usage: fsync_probe.py DIR [--machine]"""
import json
import os
import platform
import sys
import time

path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
t0 = time.perf_counter()
for _ in range(300):
    os.write(fd, b"x" * 4096)
    os.fdatasync(fd)
dt = time.perf_counter() - t0
os.close(fd)
os.unlink(path)
out = {"fdatasync_per_s": round(300 / dt), "loadavg": open("/proc/loadavg").read().split()[:3]}
if "--machine" in sys.argv[2:]:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": cpu, "cores": os.cpu_count(),
           "mem_gb": round(mem / 1048576, 1), "kernel": platform.release(),
           "fdatasync_per_s": out["fdatasync_per_s"], "loadavg_before": out["loadavg"]}
print(json.dumps(out))
