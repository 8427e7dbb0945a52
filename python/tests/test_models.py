"""Models, training and listeners from Python on the 10,000 real digits."""

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import vigil


def lenet(identifier="lenet5"):
    return vigil.Model.network(identifier, vigil.lenet5(10), preprocess=vigil.mnist_preprocess(),
                               postprocess="argmax")


def test_fit_reaches_95_percent_and_the_listener_predicts(db, digits):
    mnist = db["mnist"]
    mnist.insert_many(digits[:9000])
    model = lenet()
    assert db.add(model) == 1
    untrained = model.predict([d["img"] for d in digits[:10]])
    assert len(untrained) == 10 and all(isinstance(p, int) for p in untrained)
    report = model.fit(
        X="img", y="class", db=db, select=mnist.find(),
        configuration=vigil.TrainerConfig("my_configuration", epochs=3, batch_size=64,
                                          validation_interval=50, seed=42),
        metrics=[vigil.Metric("acc")],
        validation_sets=[vigil.Dataset("my_valid", mnist.find({"_fold": "valid"}))],
        progress=False)
    assert report["iterations"] > 300
    model = db.load("model", "lenet5")
    acc = model.metric_values["my_valid/acc"]
    assert isinstance(acc, list) and all(isinstance(a, float) for a in acc)
    assert max(acc) >= 0.95, acc
    assert model.version == 2
    assert db.show("model") == ["lenet5"] and db.show("model", "lenet5") == [1, 2]
    assert db.load("trainer", "my_configuration")["epochs"] == 3

    # Listen: the backfill runs here; then a late insert is predicted incrementally.
    status = model.predict(X="img", db=db, select=mnist.find(), listen=True)
    assert status["outputs"] == [{"model_version": 2, "count": 9000}]
    assert db.show("listener") == ["mnist/img/lenet5"]
    valid = list(mnist.find({"_fold": "valid"}))
    right = sum(d["_outputs"]["img"]["lenet5"] == d["class"] for d in valid)
    assert right / len(valid) >= 0.95
    late = [dict(d, update=True) for d in digits[9000:9100]]
    mnist.insert_many(late)
    done = db.process_pending()
    assert done["written"] == 100
    assert mnist.count_documents({"update": True, "_outputs.img.lenet5": {"$exists": True}}) == 100
    jobs = db.jobs(50)
    assert {j["kind"] for j in jobs} >= {"fit", "backfill", "predict"}
    assert db.errors() == []
    # Removing the listener switches it off and keeps the documents.
    db.remove("listener", "mnist/img/lenet5")
    assert db.listeners() == []
    assert mnist.count_documents() == 9100


def test_pytorch_weights_and_onnx_give_pytorch_predictions(digits):
    from conftest import REPO
    reference = np.fromfile(REPO / "data/lenet5/reference-predictions-u8-1000.bin", dtype=np.uint8)
    imgs = [d["img"] for d in digits[:1000]]
    pth = vigil.Model.pytorch("torch", vigil.lenet5(10), str(REPO / "data/lenet5/torch_lenet5.pth"),
                              preprocess=vigil.mnist_preprocess(), postprocess="argmax")
    onnx = vigil.Model.onnx("onnx", str(REPO / "data/lenet5/lenet5.onnx"),
                            preprocess=vigil.mnist_preprocess(), postprocess="argmax")
    assert pth.predict(imgs) == reference.tolist()
    assert onnx.predict(imgs) == reference.tolist()


def test_network_specs_as_dicts_or_json_and_model_errors(db, digits):
    import json
    spec = json.dumps(vigil.lenet5(10))
    model = vigil.Model.network("from_json", spec, preprocess=vigil.mnist_preprocess(),
                                postprocess="identity")
    out = model.predict([digits[0]["img"]])
    assert out[0].shape == (10,)  # the raw outputs, as an array
    with pytest.raises(vigil.ModelError, match="input #1"):
        model.predict([digits[0]["img"], "not an image"])
    with pytest.raises(ValueError, match="invalid network spec"):
        vigil.Model.network("bad", {"layers": "nope"})
    with pytest.raises(vigil.ModelError):
        vigil.Model.onnx("bad", b"not onnx")


def test_a_python_thread_runs_while_fit_holds_no_gil(db, digits):
    mnist = db["mnist"]
    mnist.insert_many(digits[:3000])
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=count)
    start = time.perf_counter()
    t.start()
    lenet().fit(X="img", y="class", db=db, select=mnist.find(),
                configuration=vigil.TrainerConfig("c", epochs=1, validation_interval=1000),
                progress=False)
    elapsed = time.perf_counter() - start
    stop.set()
    t.join()
    # Had fit held the GIL, the thread would have ticked only before and after it.
    assert elapsed > 0.3
    assert len(ticks) > 0.3 * elapsed / 0.0012, (len(ticks), elapsed)


WORKER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import vigil

    def mean(images):
        time.sleep(0.05)  # slow enough to be killed mid-batch, many times
        return [float(np.asarray(img, dtype=np.float64).mean()) for img in images]

    db = vigil.connect(sys.argv[1])
    vigil.Worker(db, models={"mean": mean}, batch_size=32).run(stop_after_idle=float(sys.argv[2]))
""")


def test_python_model_behind_a_killed_worker_loses_nothing(db_url, digits, tmp_path):
    def mean(images):
        return [float(np.asarray(img, dtype=np.float64).mean()) for img in images]

    db = vigil.connect(db_url, seed=3)
    mnist = db["mnist"]
    mnist.insert_many(digits[:2000])
    db.add(vigil.Model.python("mean", mean, batch_size=32))
    db.listen("mnist", "img", "mean")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    rng = random.Random(11)
    kills = 0
    while kills < 8:
        w = subprocess.Popen([sys.executable, str(script), db_url, "30"])
        time.sleep(rng.uniform(0.3, 0.8))
        if db.listener_status("mnist/img/mean")["pending"] == 0:
            w.send_signal(signal.SIGKILL)
            w.wait()
            break
        w.send_signal(signal.SIGKILL)
        w.wait()
        kills += 1
    # More documents arrive while no worker runs; a final worker finishes everything.
    mnist.insert_many(digits[2000:2200])
    w = subprocess.run([sys.executable, str(script), db_url, "1.5"], timeout=300)
    assert w.returncode == 0
    status = db.listener_status("mnist/img/mean")
    assert kills >= 3, "the worker finished before it could be killed often enough"
    assert status["pending"] == 0
    assert status["outputs"] == [{"model_version": 1, "count": 2200}]
    for doc in mnist.find():
        expected = float(np.asarray(doc["img"], dtype=np.float64).mean())
        assert doc["_outputs"]["img"]["mean"] == pytest.approx(expected)
    assert db.errors() == []


# A process started in the background by a non-interactive shell (CI's, say) inherits SIGINT
# ignored, and Python then installs no handler: Ctrl-C would never reach it. The scripts put
# Python's own handler back, as an interactive session has it.
RESTORE_CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"

INTERRUPTED_FIT = RESTORE_CTRL_C + textwrap.dedent("""
    import sys, time
    import vigil

    db = vigil.connect(sys.argv[1])
    mnist = db["mnist"]
    mnist.insert_many(vigil.read_mnist(sys.argv[2], limit=3000))
    model = vigil.Model.network("lenet5", vigil.lenet5(10), preprocess=vigil.mnist_preprocess())
    db.add(model)
    print("training", flush=True)
    start = time.time()
    try:
        model.fit(X="img", y="class", db=db, select=mnist.find(),
                  configuration=vigil.TrainerConfig("long", epochs=50), progress=False)
    except KeyboardInterrupt:
        print(f"interrupted after {time.time() - start:.1f} s", flush=True)
        print("versions", db.show("model", "lenet5"), flush=True)
        print("job", db.jobs(1)[0]["status"], flush=True)
""")


def test_ctrl_c_interrupts_a_fit_cleanly(db_url, tmp_path):
    from conftest import MNIST
    script = tmp_path / "fit.py"
    script.write_text(INTERRUPTED_FIT)
    p = subprocess.Popen([sys.executable, str(script), db_url, str(MNIST)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "training"
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    seconds = float(re.search(r"interrupted after ([0-9.]+) s", out).group(1))
    assert seconds < 20, out  # 50 epochs would take minutes
    assert "versions [1]" in out  # no half-trained version was stored
    assert "job failed" in out


FAULTY_WORKER = textwrap.dedent("""
    import sys, time
    import vigil

    def faulty(xs):
        out = []
        for x in xs:
            if x == 13:
                time.sleep(3600)          # never returns
            if x == 17:
                raise RuntimeError("seventeen is cursed")
            out.append(object() if x == 19 else x * 2)   # 19: an output vigil cannot store
        return out

    db = vigil.connect(sys.argv[1])
    vigil.Worker(db, models={"faulty": faulty}, batch_size=16, time_limit=0.5,
                 max_attempts=1).run(stop_after_idle=1.0)
    print("worker exited", flush=True)
""")


def test_python_models_that_hang_raise_or_return_garbage_fail_alone(db_url, tmp_path):
    db = vigil.connect(db_url)
    coll = db["numbers"]
    coll.insert_many({"n": n} for n in range(60))
    db.add(vigil.Model.python("faulty", lambda xs: [x * 2 for x in xs], batch_size=16))
    db.listen("numbers", "n", "faulty")
    script = tmp_path / "faulty.py"
    script.write_text(FAULTY_WORKER)
    out = subprocess.run([sys.executable, str(script), db_url], capture_output=True, text=True,
                         timeout=120)
    assert "worker exited" in out.stdout, out.stderr
    errors = {e["doc_id"]: e for e in db.errors()}
    ids = {d["n"]: d["_id"] for d in coll.find({}, {"n": 1})}
    assert set(errors) == {ids[13], ids[17], ids[19]}
    assert "did not finish within" in errors[ids[13]]["error"]
    assert "seventeen is cursed" in errors[ids[17]]["error"]
    assert "output #0" in errors[ids[19]]["error"]
    assert all(e["parked"] for e in errors.values())
    for doc in coll.find():
        if doc["n"] in (13, 17, 19):
            assert "_outputs" not in doc or "faulty" not in doc["_outputs"].get("n", {})
        else:
            assert doc["_outputs"]["n"]["faulty"] == doc["n"] * 2
    # Once the model is fixed, the parked documents are retried on request, here.
    assert db.retry_parked("numbers/n/faulty") == 3
    assert db.listener_status("numbers/n/faulty")["parked"] == 0
    db.process_pending()
    assert db.errors() == []
    assert coll.count_documents({"_outputs.n.faulty": {"$exists": True}}) == 60
    with pytest.raises(vigil.NotFoundError):
        db.retry_parked("numbers/n/nope")


INTERRUPTED_BACKFILL = RESTORE_CTRL_C + textwrap.dedent("""
    import sys, time
    import vigil

    def slow(xs):
        time.sleep(0.05)
        return [len(x) for x in xs]

    db = vigil.connect(sys.argv[1])
    db["words"].insert_many({"w": "x" * (i % 7)} for i in range(6400))
    db.add(vigil.Model.python("slow", slow, batch_size=64))
    db.listen("words", "w", "slow")
    print("backfilling", flush=True)
    try:
        db.process_pending()
    except KeyboardInterrupt:
        s = db.listener_status("words/w/slow")
        done = sum(o["count"] for o in s["outputs"])
        print(f"interrupted done={done} pending={s['pending']}", flush=True)
""")


def test_ctrl_c_stops_a_backfill_between_batches(db_url, tmp_path):
    script = tmp_path / "backfill.py"
    script.write_text(INTERRUPTED_BACKFILL)
    p = subprocess.Popen([sys.executable, str(script), db_url], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "backfilling"
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    m = re.search(r"interrupted done=(\d+) pending=(\d+)", out)
    assert m, out
    done, pending = int(m.group(1)), int(m.group(2))
    # Applied batches stay applied; the rest stays queued for the next worker.
    assert 0 < done < 6400 and done + pending == 6400, out
    assert done % 64 == 0, out
