"""Sorting in MongoDB's order (vigil) against the plain driver's `ORDER BY json_extract(...)`
(Python's sqlite3 on the same file), on the 10,000 repository digits: the first 10 documents
by a field, indexed (`class`) and not (`_fold`). Medians of 30 runs.

    python python/bench/sort_vs_sqlite.py      # with the vigil package installed
"""

import os
import pathlib
import sqlite3
import statistics
import tempfile
import time

import vigil

REPO = pathlib.Path(__file__).resolve().parents[2]


def median_ms(f, n=30):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main():
    path = os.path.join(tempfile.mkdtemp(), "sort.db")
    db = vigil.connect(f"sqlite://{path}")
    mnist = db["mnist"]
    mnist.insert_many(vigil.read_mnist(str(REPO / "data" / "mnist")))
    mnist.create_index("class")
    con = sqlite3.connect(path)
    for field, indexed in (("class", True), ("_fold", False)):
        mine = median_ms(lambda: list(mnist.find({}, {"img": 0}).sort(field, -1).limit(10)))
        plain = median_ms(lambda: con.execute(
            f'SELECT doc FROM "mnist" ORDER BY json_extract(doc, \'$."{field}"\') DESC, seq LIMIT 10'
        ).fetchall())
        walk = median_ms(lambda: con.execute(
            f'SELECT doc FROM "mnist" ORDER BY json_extract(doc, \'$."{field}"\') DESC LIMIT 10'
        ).fetchall())
        print(f"{field:6} indexed={indexed!s:5}  vigil {mine:6.2f} ms  plain sort {plain:6.2f} ms "
              f"({plain / mine:.2f}x)  plain without tie-break {walk:6.2f} ms")


if __name__ == "__main__":
    main()
