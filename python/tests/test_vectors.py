"""Vector search from Python on real digits: LeNet5's features (PyTorch's trained weights)
and a Python callable returning numpy arrays, both kept by listeners and searched with
``collection.like``."""

import numpy as np
import pytest

import vigil
from conftest import REPO


def test_similar_digits_by_lenet5_features(db, digits):
    mnist = db["mnist"]
    mnist.insert_many(digits[:3000])
    lenet = vigil.Model.pytorch("lenet5", vigil.lenet5(10),
                                str(REPO / "data" / "lenet5" / "torch_lenet5.pth"),
                                preprocess=vigil.mnist_preprocess())
    features = lenet.features("lenet5-features", "fc2")
    assert len(features.predict([digits[0]["img"]])[0]) == 84
    db.add(features)
    on = db.listen(mnist, "img", features)
    db.process_pending()
    assert db.vector_index("digits", on["listener"]["name"]) == 1
    status = db.vector_index_status("digits")
    assert (status["vectors"], status["dimension"], status["measure"]) == (3000, 84, "cosine")

    # By image: the digit itself comes first, its neighbours mostly share its class.
    same = 0
    for d in digits[:50]:
        hits = mnist.like({"img": d["img"]}, n=11)
        assert hits[0]["score"] > 0.9999
        assert hits[0]["document"]["class"] == d["class"]
        same += sum(h["document"]["class"] == d["class"] for h in hits[1:])
    assert same / 500 >= 0.9, same / 500

    # By id and by vector, under a filter: n results, all matching.
    first = mnist.find_one({"class": 3})
    by_id = mnist.like(id=first["_id"], n=5, filter={"class": {"$ne": 3}})
    assert len(by_id) == 5 and all(h["document"]["class"] != 3 for h in by_id)
    vec = np.frombuffer(features.predict([first["img"]])[0].tobytes(), dtype=np.float32)
    by_vec = mnist.like(vector=vec, n=3, filter={"_fold": "valid"})
    assert len(by_vec) == 3 and all(h["document"]["_fold"] == "valid" for h in by_vec)

    with pytest.raises(vigil.InvalidQueryError, match="2 dimensions, the index holds 84"):
        mnist.like(vector=[1.0, 2.0])
    with pytest.raises(TypeError):
        mnist.like({"img": digits[0]["img"]}, id=first["_id"])


def test_numpy_outputs_of_a_python_model_are_searchable(db, digits):
    mnist = db["mnist"]
    mnist.insert_many(digits[:500])

    def pooled(images):
        # 7x7 mean-pooled pixels: a 49-value vector per image, as numpy arrays.
        out = []
        for img in images:
            a = np.asarray(img, dtype=np.float32).reshape(7, 4, 7, 4).mean(axis=(1, 3))
            out.append(a.reshape(49))
        return out

    model = vigil.Model.python("pooled", pooled)
    db.add(model)
    on = db.listen(mnist, "img", model)
    db.process_pending()
    db.vector_index("pixels", on["listener"]["name"], measure="l2")
    assert db.vector_index_status("pixels")["dimension"] == 49
    query = digits[123]["img"]
    hits = mnist.like(vector=pooled([query])[0], n=1)
    assert hits[0]["score"] == pytest.approx(0.0, abs=1e-4)
    assert np.array_equal(np.asarray(hits[0]["document"]["img"]), np.asarray(query))
