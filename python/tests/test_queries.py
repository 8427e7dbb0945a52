"""Collections from Python: inserts (streamed, all or nothing), lazy cursors, updates,
deletes and indexes, on the real digits."""

import itertools

import pytest

import vigil


def test_insert_many_streams_any_iterable_all_or_nothing(db, digits):
    coll = db["mnist"]
    seen = []

    def gen():
        for d in digits[:3000]:
            seen.append(1)
            yield d

    ids = coll.insert_many(gen())
    assert len(ids) == 3000 and len(set(ids)) == 3000
    assert coll.count_documents() == 3000
    # A bad document in the middle stores nothing of the batch, and the error is Python's.
    bad = itertools.chain(digits[3000:3500], [{"img": object()}], digits[3500:4000])
    with pytest.raises(TypeError, match="cannot store"):
        coll.insert_many(bad)
    assert coll.count_documents() == 3000
    # An iterable that raises is re-raised as it was.
    def broken():
        yield digits[0]
        raise RuntimeError("source failed")
    with pytest.raises(RuntimeError, match="source failed"):
        coll.insert_many(broken())
    assert coll.count_documents() == 3000


def test_find_sort_skip_limit_projection(db, digits):
    coll = db["mnist"]
    coll.insert_many(digits[:1000])
    classes = [d["class"] for d in digits[:1000]]
    got = [d["class"] for d in coll.find({"class": {"$in": [3, 5]}}).sort("class", -1)]
    assert got == sorted([c for c in classes if c in (3, 5)], reverse=True)
    page = list(coll.find({}, {"img": 0}).sort([("class", 1)]).skip(10).limit(5))
    assert [d["class"] for d in page] == sorted(classes)[10:15]
    assert all("img" not in d and "_id" in d for d in page)
    only = coll.find_one({"class": 7}, {"class": 1, "_id": 0})
    assert only == {"class": 7}
    assert coll.count_documents({"class": 7, "_fold": {"$in": ["train", "valid"]}}) == \
        classes.count(7)
    # Cursors are lazy, and cannot be refined once iterated.
    cur = coll.find({"class": 1})
    next(cur)
    with pytest.raises(ValueError, match="already being iterated"):
        cur.limit(3)


def test_updates_replace_delete_and_indexes(db, digits):
    coll = db["mnist"]
    coll.insert_many(digits[:500])
    sevens = coll.count_documents({"class": 7})
    r = coll.update_many({"class": 7}, {"$set": {"checked": True}, "$inc": {"class": 0}})
    assert r == {"matched_count": sevens, "modified_count": sevens, "upserted_id": None}
    assert coll.count_documents({"checked": True}) == sevens
    one = coll.find_one({"class": 7})
    assert coll.replace_one({"_id": one["_id"]}, {"class": 70})["modified_count"] == 1
    assert coll.find_one({"_id": one["_id"]})["class"] == 70
    assert coll.update_one({"class": 999}, {"$set": {"x": 1}}) == \
        {"matched_count": 0, "modified_count": 0, "upserted_id": None}
    assert coll.delete_one({"class": 70}) == 1
    assert coll.delete_many({"checked": True}) == sevens - 1
    coll.create_index("class")
    assert coll.count_documents({"class": 7}) == 0
    assert db.list_collection_names() == ["mnist"]
    assert db.drop_collection("mnist") is True
    assert db.list_collection_names() == []


def test_postgres_behaves_the_same(pg, digits):
    coll = pg["mnist"]
    coll.insert_many(digits[:300])
    assert coll.count_documents() == 300
    first = coll.find_one({}, {"img": 1})
    assert first["img"].size == (28, 28)
    assert [d["class"] for d in coll.find({"class": 0}).limit(3)] == [0, 0, 0]


def test_update_operators_and_upserts_with_pymongo_names(db):
    coll = db["ops"]
    coll.insert_one({"_id": 1, "tags": ["a"], "n": 2})
    r = coll.update_one({"_id": 1}, {"$push": {"tags": {"$each": ["b", "c"], "$slice": -2}},
                                     "$mul": {"n": 1.5}, "$addToSet": {"seen": "x"}})
    assert r == {"matched_count": 1, "modified_count": 1, "upserted_id": None}
    assert coll.find_one({"_id": 1}, {"_fold": 0}) == {"_id": 1, "tags": ["b", "c"], "n": 3.0,
                                                          "seen": ["x"]}
    r = coll.update_one({"_id": "u", "kind": "new"}, {"$inc": {"hits": 1}}, upsert=True)
    assert r == {"matched_count": 0, "modified_count": 0, "upserted_id": "u"}
    assert coll.find_one({"_id": "u"}, {"_fold": 0}) == {"_id": "u", "kind": "new", "hits": 1}
    assert coll.update_one({"_id": "u"}, {"$inc": {"hits": 1}}, upsert=True)["upserted_id"] is None
    assert coll.replace_one({"_id": "r"}, {"v": 1}, upsert=True)["upserted_id"] == "r"
    assert coll.count_documents({}) == 3
    with pytest.raises(vigil.InvalidQueryError):
        coll.update_one({"_id": 1}, {"$set": {"a": 1}, "$unset": {"a": ""}})
