#!/usr/bin/python3
"""Sample the summed RSS of a process and all its descendants until
STOPFILE exists; print the peak in MB. Usage: treemem.py PID STOPFILE."""
import os
import sys
import time

root, stop = int(sys.argv[1]), sys.argv[2]


def tree_rss_kb():
    children = {}
    rss = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/statm") as f:
                pages = int(f.read().split()[1])
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(d))
        rss[int(d)] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


peak = 0
while not os.path.exists(stop):
    peak = max(peak, tree_rss_kb())
    time.sleep(0.05)
print(peak // 1024)
