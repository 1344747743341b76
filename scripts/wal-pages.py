#!/usr/bin/env python3
"""What each commit in a SQLite WAL wrote, by table and index.

usage: scripts/wal-pages.py DB WAL

DB and WAL are copies taken together (mqtt_bench's BENCH_WAL_COPY=DIR takes
them half way through each round). Reads the WAL's frames since its last
restart (WAL file format, sqlite.org/fileformat2.html#walformat), groups them
into commits, and names each page with dbstat on the DB copy; pages past the
copy's end (grown since the last checkpoint) show as "new page". Needs the
sqlite3 shell (Debian's has dbstat).
"""
import collections
import statistics
import struct
import subprocess
import sys

db, wal = sys.argv[1], sys.argv[2]
data = open(wal, "rb").read()
if len(data) < 32:
    sys.exit("the WAL is empty (just checkpointed): take another copy")
_magic, _version, page_size, _seq, salt1, salt2, _c1, _c2 = struct.unpack(">8I", data[:32])
commits, current, off = [], [], 32
while off + 24 + page_size <= len(data):
    page, db_size, s1, s2, _k1, _k2 = struct.unpack(">6I", data[off : off + 24])
    off += 24 + page_size
    if (s1, s2) != (salt1, salt2):
        break  # frames of before the last restart
    current.append(page)
    if db_size:  # a commit's last frame
        commits.append(current)
        current = []
if not commits:
    sys.exit("no whole commit in the WAL copy")
names = {}
out = subprocess.run(
    ["sqlite3", db, "SELECT pageno, name FROM dbstat"], capture_output=True, text=True
).stdout
for line in out.splitlines():
    page, name = line.split("|", 1)
    names[int(page)] = name
sizes = sorted(len(c) for c in commits)
frames = sum(sizes)
print(
    f"{len(commits)} commits, {frames} frames of {page_size} bytes: "
    f"{frames / len(commits):.1f} a commit (p50 {statistics.median(sizes)}, "
    f"p90 {sizes[int(len(sizes) * 0.9)]}, max {sizes[-1]})"
)
by_name = collections.Counter(names.get(p, "new page") for c in commits for p in c)
print("pages a commit, by table or index:")
for name, n in by_name.most_common():
    print(f"  {n / len(commits):6.2f}  {name}")
