"""Every value type survives a round trip through the database, on SQLite and PostgreSQL."""

import numpy as np
import pytest
from PIL import Image

import vigil


def roundtrip(db, doc):
    coll = db["values"]
    _id = coll.insert_one(doc)
    return coll.find_one({"_id": _id})


@pytest.mark.parametrize("backend", ["db", "pg"])
def test_plain_values_round_trip(request, backend):
    db = request.getfixturevalue(backend)
    doc = {"none": None, "t": True, "f": False, "i": -(2 ** 62), "x": 2.5, "s": "ünïcødé ✓",
           "b": b"\x00\xff\x10", "list": [1, "a", None, [2.0, {"deep": True}]],
           "nested": {"a": {"b": {"c": 3}}}, "tuple": (1, 2)}
    back = roundtrip(db, doc)
    for key, value in doc.items():
        expected = list(value) if isinstance(value, tuple) else value
        assert back[key] == expected, key
    assert type(back["i"]) is int and type(back["x"]) is float and type(back["t"]) is bool
    assert list(back)[:3] == ["_id", "none", "t"] or "_id" in back


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "1", "P"])
def test_pil_images_round_trip_as_png(db, mode):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, size=(7, 9, 4), dtype=np.uint8)
    img = Image.fromarray(pixels, "RGBA").convert(mode)
    back = roundtrip(db, {"img": img})["img"]
    assert isinstance(back, Image.Image)
    expected = img.convert("L") if mode == "1" else img
    if mode == "P":
        expected = img.convert("RGBA")
    assert back.size == (9, 7)
    assert back.mode == expected.mode
    assert back.tobytes() == expected.tobytes()


@pytest.mark.parametrize("dtype,stored", [("float32", "float32"), ("float64", "float64"),
                                          ("int64", "int64"), ("uint8", "uint8"),
                                          ("int32", "int64"), ("bool", "int64"),
                                          ("float16", "float32")])
def test_numpy_arrays_round_trip_as_tensors(db, dtype, stored):
    arr = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    back = roundtrip(db, {"t": arr})["t"]
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.dtype(stored)
    assert back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, arr.astype(stored))
    back[0, 0, 0] = 1  # writable, like any array


def test_non_contiguous_and_big_endian_arrays(db):
    arr = np.arange(12, dtype=">f8").reshape(3, 4)[:, ::2]
    back = roundtrip(db, {"t": arr})["t"]
    np.testing.assert_array_equal(back, arr.astype("<f8"))


def test_encoded_values_are_stored_as_given_and_unknown_codecs_refused(db):
    import io
    buf = io.BytesIO()
    Image.new("RGB", (4, 2), (10, 20, 30)).save(buf, format="PNG")
    back = roundtrip(db, {"e": vigil.Encoded("image/png", buf.getvalue())})["e"]
    assert isinstance(back, Image.Image) and back.getpixel((3, 1)) == (10, 20, 30)
    with pytest.raises(vigil.InvalidDocumentError, match="unknown codec `application/x-mine`"):
        db["values"].insert_one({"e": vigil.Encoded("application/x-mine", b"opaque")})


def test_unstorable_values_are_clear_errors(db):
    coll = db["bad"]
    with pytest.raises(TypeError, match="`a.b`: cannot store a object"):
        coll.insert_one({"a": {"b": object()}})
    with pytest.raises(TypeError, match="field names are strings"):
        coll.insert_one({1: "x"})
    with pytest.raises(ValueError, match="64-bit"):
        coll.insert_one({"big": 2 ** 70})
    with pytest.raises(vigil.InvalidDocumentError):
        coll.insert_one({"nan": float("nan")})
    with pytest.raises(vigil.InvalidDocumentError):
        coll.insert_one({"bad.name": 1})
    assert coll.count_documents() == 0


def test_deeply_nested_documents_are_refused_not_crashed(db):
    doc = {}
    cur = doc
    for _ in range(10_000):
        cur["a"] = {}
        cur = cur["a"]
    with pytest.raises(ValueError, match="nested more than"):
        db["deep"].insert_one(doc)
