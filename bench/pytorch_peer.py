"""PyTorch on the same cores: the peer of `cargo bench -p vigil --bench models`.

The same LeNet5 (data/lenet5/README.md), the same digits (data/mnist), preprocessed the same
way, timed the way vigil's bench times itself: inference on the first 1,000 digits already in
memory at batch 1, 64 and 1000 (images/s, best of 3), and one training epoch on N digits at
batch 64 with Adam (lr 1e-3), median of 3; each at 1 thread and at every core. Run by
bench/peer.sh, which runs vigil's bench first in the same run; this prints both side by side.

    python bench/pytorch_peer.py --vigil models.md   # vigil's bench output beside PyTorch's
"""

import argparse
import gzip
import json
import os
import re
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def digits():
    px = idx(os.path.join(ROOT, "data/mnist/digits-images-idx3-ubyte.gz"))
    y = idx(os.path.join(ROOT, "data/mnist/digits-labels-idx1-ubyte.gz"))
    x = (px.astype(np.float32) / 255.0 - MEAN) / STD
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=(0 - MEAN) / STD)
    x = torch.from_numpy(np.ascontiguousarray(x[:, None], dtype=np.float32))
    return x, torch.from_numpy(y.astype(np.int64))


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def inference(x, threads):
    torch.set_num_threads(threads)
    model = LeNet5()
    state = torch.load(os.path.join(ROOT, "data/lenet5/torch_lenet5.pth"), weights_only=True)
    model.load_state_dict(state)
    model.eval()
    x = x[:1000]
    out = {}
    with torch.inference_mode():
        for bs in (1, 64, 1000):
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                for i in range(0, len(x), bs):
                    model(x[i : i + bs])
                best = min(best, time.perf_counter() - t)
            out[str(bs)] = len(x) / best
    return out


def forward_256(x, threads):
    """The listener's limit: LeNet5's forward pass on every digit at the backfill's batch
    (256), tensors already in memory, best of 3."""
    torch.set_num_threads(threads)
    model = LeNet5()
    model.load_state_dict(torch.load(os.path.join(ROOT, "data/lenet5/torch_lenet5.pth"), weights_only=True))
    model.eval()
    best = float("inf")
    with torch.inference_mode():
        for _ in range(3):
            t = time.perf_counter()
            for i in range(0, len(x), 256):
                model(x[i : i + 256])
            best = min(best, time.perf_counter() - t)
    return len(x) / best


def listener_figures(text):
    """The SQLite backfill figures of `cargo bench -p vigil --bench listeners`."""
    n = int(re.search(r"Backfill of (\d+) digits on SQLite", text).group(1))
    default = float(re.search(r"\| backfill from SQLite through the listener \| (\d+) \|", text).group(1))
    m = re.search(r"\| backfill from SQLite, the model on (\d+) threads? \| (\d+) \|", text)
    return n, default, (int(m.group(1)), float(m.group(2))) if m else None


def epoch(x, y, threads):
    torch.set_num_threads(threads)
    times = []
    for _ in range(3):
        torch.manual_seed(42)
        model = LeNet5()
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(42))
        t = time.perf_counter()
        for i in range(0, len(x), 64):
            j = perm[i : i + 64]
            loss = F.cross_entropy(model(x[j]), y[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def vigil_figures(text):
    """The figures of `cargo bench -p vigil --bench models`'s Markdown output."""
    n = int(re.search(r"one epoch of LeNet5, (\d+) digits", text).group(1))
    epoch_s = float(re.search(r"\| burn loop on tensors already in memory \| ([\d.]+) \|", text).group(1))
    engines = {}
    for name, key in (("burn", r"burn \(flex\)[^|]*"), ("tract", r"tract[^|]*")):
        m = re.search(r"\| " + key + r"\| (\d+) \| (\d+) \| (\d+) \|", text)
        engines[name] = dict(zip(("1", "64", "1000"), map(float, m.groups())))
    threads = int(re.search(r"threads per model: (\d+)", text).group(1))
    return n, epoch_s, engines, threads


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vigil", required=True, help="the output of vigil's models bench")
    parser.add_argument("--listeners", help="the output of vigil's listeners bench")
    args = parser.parse_args()
    n, vigil_epoch, engines, vigil_threads = vigil_figures(open(args.vigil).read())
    x, y = digits()
    cores = os.cpu_count() or 1
    peer = {}
    for threads in sorted({1, cores}):
        peer[threads] = (inference(x, threads), epoch(x[:n], y[:n], threads))
    print(f"## vigil beside PyTorch {torch.__version__}, same run, {cores} cores\n")
    print(f"vigil's models run on {vigil_threads} thread(s) (its default).\n")
    print("| inference on 1,000 digits in memory (images/s, best of 3) | batch 1 | batch 64 | batch 1000 |")
    print("| --- | ---: | ---: | ---: |")
    for name, figures in engines.items():
        print(f"| vigil, {name} | " + " | ".join(f"{figures[b]:,.0f}" for b in ("1", "64", "1000")) + " |")
    for threads, (inf, _) in peer.items():
        print(f"| PyTorch, {threads} thread(s) | " + " | ".join(f"{inf[b]:,.0f}" for b in ("1", "64", "1000")) + " |")
        for name, figures in engines.items():
            print(f"| ratio vigil {name} / PyTorch {threads} thread(s) | " + " | ".join(f"{figures[b] / inf[b]:.2f}" for b in ("1", "64", "1000")) + " |")
    print(f"\n| one training epoch, {n:,} digits, batch 64, Adam (median of 3) | seconds | vigil's time / PyTorch's |")
    print("| --- | ---: | ---: |")
    print(f"| vigil (burn, tensors in memory) | {vigil_epoch:.2f} | |")
    for threads, (_, secs) in peer.items():
        print(f"| PyTorch, {threads} thread(s) | {secs:.2f} | {vigil_epoch / secs:.2f}x |")
    if args.listeners:
        n_docs, backfill, on_all = listener_figures(open(args.listeners).read())
        limits = {threads: forward_256(x[:n_docs], threads) for threads in sorted({1, cores})}
        top = limits[max(limits)]
        print(f"\n| listener backfill on SQLite, {n_docs:,} digits, batch 256 | docs/s | ratio to PyTorch's forward on {max(limits)} thread(s) |")
        print("| --- | ---: | ---: |")
        print(f"| vigil backfill, model on {vigil_threads} thread(s) (default) | {backfill:,.0f} | {backfill / top:.2f} |")
        if on_all:
            print(f"| vigil backfill, model on {on_all[0]} thread(s) | {on_all[1]:,.0f} | {on_all[1] / top:.2f} |")
        for threads, rate in limits.items():
            print(f"| PyTorch forward pass only, tensors in memory, {threads} thread(s) | {rate:,.0f} | {rate / top:.2f} |")


if __name__ == "__main__":
    main()
