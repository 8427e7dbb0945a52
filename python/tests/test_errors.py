"""Every error kind is its own exception class under vigil.Error, with the Rust message."""

import pytest
from PIL import Image

import vigil


def test_every_error_class_is_a_vigil_error(db, digits):
    for cls in (vigil.NotFoundError, vigil.InvalidQueryError, vigil.InvalidDocumentError,
                vigil.DecodeError, vigil.ModelError, vigil.BackendError):
        assert issubclass(cls, vigil.Error) and issubclass(cls, Exception)
    coll = db["mnist"]
    coll.insert_many(digits[:20])

    with pytest.raises(vigil.NotFoundError, match="no model `nope`"):
        db.load("model", "nope")
    with pytest.raises(vigil.InvalidQueryError, match=r"unsupported operator `\$where`"):
        coll.count_documents({"$where": "1"})
    with pytest.raises(vigil.InvalidQueryError, match="expects an array"):
        list(coll.find({"class": {"$in": 7}}))
    with pytest.raises(vigil.InvalidQueryError, match="invalid collection name"):
        db["drop table;"]
    with pytest.raises(vigil.InvalidQueryError, match="unknown scheme"):
        vigil.connect("mysql://x")
    first = coll.find_one()
    with pytest.raises(vigil.InvalidDocumentError, match="duplicate _id"):
        coll.insert_one({"_id": first["_id"]})
    corrupt = vigil.Encoded("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(vigil.Error):
        corrupt.to_pil()
    model = vigil.Model.network("m", vigil.lenet5(10), preprocess=vigil.mnist_preprocess())
    with pytest.raises(vigil.ModelError, match="model `m`"):
        model.predict([42])
    with pytest.raises(vigil.BackendError, match="postgres"):
        vigil.connect("postgres://nobody@127.0.0.1:1/none")


def test_decode_errors_name_the_codec(db):
    bad = vigil.Encoded("tensor", b"VT1 not a tensor")
    with pytest.raises(vigil.DecodeError, match="tensor"):
        bad.to_numpy()
    img = Image.new("L", (3, 3))
    assert db["x"].insert_one({"img": img}) is not None
