"""The notebook's heavy stages from Python against the same work through the Rust API, in one
run (not a test; not in CI). Build both in release first:

    cargo build --release -p vigil --example stages
    (cd python && maturin develop --release)
    python python/bench/python_vs_rust.py            # from the repository root

Prints a Markdown table: seconds and documents/s of each stage through each API, and their
ratio (Python time / Rust time; goal: at most 1.2), plus SuperDuperDB's recorded figures.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import vigil

REPO = pathlib.Path(__file__).resolve().parents[2]
MNIST = REPO / "data" / "mnist"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
RUNS = int(os.environ.get("RUNS", "3"))


def python_stages(path):
    db = vigil.connect(f"sqlite://{path}", seed=1)
    mnist = db["mnist"]
    digits = vigil.read_mnist(str(MNIST))  # PIL images in memory, as a user holds them
    start = time.perf_counter()
    mnist.insert_many(digits)
    insert = time.perf_counter() - start
    model = vigil.Model.network("lenet5", vigil.lenet5(10), preprocess=vigil.mnist_preprocess(),
                                postprocess="argmax")
    db.add(model)
    start = time.perf_counter()
    db.listen("mnist", "img", "lenet5")
    db.process_pending()
    backfill = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(X="img", y="class", db=db, select=mnist.find(),
              configuration=vigil.TrainerConfig("epoch", epochs=1, batch_size=64,
                                                validation_interval=1_000_000),
              progress=False)
    fit = time.perf_counter() - start
    return {"documents": len(digits), "insert": insert, "backfill": backfill, "fit_epoch": fit}


def rust_stages(path):
    exe = TARGET / "release" / "examples" / "stages"
    out = subprocess.run([str(exe), str(MNIST), str(path)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    py, rs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(RUNS):  # interleaved, so drift hits both alike
            rs.append(rust_stages(pathlib.Path(tmp) / f"rust{i}.db"))
            py.append(python_stages(pathlib.Path(tmp) / f"py{i}.db"))
    n = py[0]["documents"]
    print(f"| stage ({n} digits, median of {RUNS}) | Rust API (s) | Python (s) | Python docs/s "
          f"| Python / Rust | SuperDuperDB docs/s |")
    print("|---|---:|---:|---:|---:|---:|")
    sdd = {"insert": "752", "backfill": "103", "fit_epoch": "-"}
    for stage, label in [("insert", "insert_many of the digits as images (PNG encoding included)"),
                         ("backfill", "listener backfill (LeNet5, SQLite)"),
                         ("fit_epoch", "one epoch of fit (batch 64, Adam)")]:
        r = statistics.median(x[stage] for x in rs)
        p = statistics.median(x[stage] for x in py)
        print(f"| {label} | {r:.2f} | {p:.2f} | {n / p:,.0f} | {p / r:.2f} | {sdd[stage]} |")


if __name__ == "__main__":
    sys.exit(main())
