#!/usr/bin/python3
"""Time one clone: prints "TTFB_MS TOTAL_MS".

TTFB is the time until git reports the first received pack data
("Receiving objects"): everything the server does before it can send
(counting, compressing) lies before it. Usage: clonetime.py URL DEST.
"""
import subprocess
import sys
import time

url, dest = sys.argv[1], sys.argv[2]
start = time.monotonic()
p = subprocess.Popen(["git", "clone", "--bare", "--progress", url, dest],
                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
ttfb = None
seen = b""
while True:
    chunk = p.stderr.read1(4096)
    if not chunk:
        break
    if ttfb is None:
        seen = (seen + chunk)[-256:]
        if b"Receiving objects" in seen:
            ttfb = time.monotonic() - start
code = p.wait()
total = time.monotonic() - start
if code != 0:
    sys.exit(f"clone of {url} failed with {code}")
print(f"{int((ttfb or total) * 1000)} {int(total * 1000)}")
