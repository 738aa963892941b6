#!/usr/bin/env python3
"""Run a command several times; print min/median wall time and peak RSS of the process tree.

usage: measure.py LABEL RUNS [--setup CMD] -- COMMAND...
--setup runs (untimed, through the shell) before every run, e.g. to empty a store.
"""
import os
import statistics
import subprocess
import sys
import time

label, runs = sys.argv[1], int(sys.argv[2])
rest = sys.argv[3:]
setup = None
if rest and rest[0] == "--setup":
    setup, rest = rest[1], rest[2:]
if rest and rest[0] == "--":
    rest = rest[1:]

walls, peaks = [], []
for _ in range(runs):
    if setup:
        subprocess.run(setup, shell=True, check=True, executable="/bin/bash")
    start = time.monotonic()
    proc = subprocess.Popen(rest, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    walls.append(time.monotonic() - start)
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"{label}: command failed ({os.waitstatus_to_exitcode(status)}): {err[-800:]}", file=sys.stderr)
        sys.exit(1)
    # ru_maxrss of wait4 covers the process itself; children it waited for are folded in by the kernel.
    peaks.append(usage.ru_maxrss / 1024)

print(f"{label:<44} wall min {min(walls):8.3f} s  median {statistics.median(walls):8.3f} s  peak RSS {max(peaks):7.1f} MiB  ({runs} runs)")
print(f"RESULT {label} {statistics.median(walls):.4f}")
