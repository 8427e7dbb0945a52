"""vigil against a MongoDB-wire server (SecantusDB in CI), same documents, same queries: filters,
sorts, updates and upserts must give MongoDB's answers on SQLite and on PostgreSQL.

The documents mix types, nulls, missing fields, nested documents and arrays. Filters that
depend on MongoDB's implicit array matching (and the operators vigil does not run yet) are
listed apart: the test checks that vigil still differs on them or refuses them, so that the day
they agree they move to the agreeing list (issue 13's remaining work).
"""

import copy
import os

import pytest

import vigil

import pymongo  # CI installs it; a missing module is a failure, not a skip

MONGODB = os.environ.get("VIGIL_TEST_MONGODB", "mongodb://127.0.0.1:27017")

DOCS = [
    {"_id": 1, "a": 1, "b": 1, "s": "x", "n": {"b": 1}},
    {"_id": 2, "a": 2, "b": 1.0, "s": "y", "n": {"b": 5}},
    {"_id": 3, "a": 1.0, "b": 2, "s": "X"},
    {"_id": 4, "a": None, "b": None},
    {"_id": 5},
    {"_id": 6, "a": "1", "b": "1", "s": ""},
    {"_id": 7, "a": True, "b": False},
    {"_id": 8, "a": 7, "b": 1, "tags": ["x", "y"]},
    {"_id": 9, "a": {"c": 1}, "b": {"c": 1}, "tags": []},
    {"_id": 10, "a": -5, "b": 2.5, "n": [{"b": 1}, {"b": 5}], "tags": ["z"]},
    {"_id": 11, "a": 3, "s": "é"},
    {"_id": 12, "a": False, "b": 0, "tags": [3, "x", None]},
]

AGREE = [
    {},
    {"a": 1}, {"a": 1.0}, {"a": "1"}, {"a": None}, {"a": {"$ne": None}}, {"a": True},
    {"a": {"$gt": 0}}, {"a": {"$gte": 1, "$lt": 3}}, {"a": {"$lt": "z"}}, {"a": {"$lte": 1}},
    {"a": {"$in": [1, "1", True]}}, {"a": {"$nin": [1, 2]}}, {"a": {"$exists": False}},
    {"b": {"$exists": True}}, {"a": {"c": 1}}, {"s": {"$in": ["x", "é"]}},
    {"$or": [{"a": 1}, {"s": "x"}]}, {"$and": [{"a": {"$gt": 0}}, {"b": 1}]},
    {"$nor": [{"a": 1}, {"s": "y"}]}, {"a": {"$not": {"$gt": 1}}}, {"s": {"$gt": "X"}},
    {"s": {"$gte": ""}}, {"_id": {"$in": [1, 3, 99]}}, {"_id": {"$gt": 10}},
    {"$expr": {"$eq": ["$a", "$b"]}}, {"$expr": {"$ne": ["$a", "$b"]}},
    {"$expr": {"$gt": ["$a", "$b"]}}, {"$expr": {"$lte": ["$a", 1]}},
    {"$expr": {"$ne": ["$s", "x"]}}, {"$expr": {"$lt": ["$s", "$a"]}},
    {"$expr": {"$and": [{"$gt": ["$a", 0]}, {"$lt": ["$a", 3]}]}},
    {"$expr": {"$or": [{"$eq": ["$a", None]}, {"$eq": ["$n.b", 5]}]}},
    {"$expr": {"$gte": ["$b", True]}},
    {"tags.0": "x"}, {"tags.1": "y"}, {"tags.2": None}, {"tags.0": {"$gt": 2}},
    {"$expr": {"$eq": ["$tags.0", "x"]}},
    # An array matches when one of its elements does.
    {"tags": "x"}, {"tags": {"$ne": "x"}}, {"tags": {"$in": ["z"]}}, {"tags": 3},
    {"tags": None}, {"tags": {"$gt": "w"}}, {"tags": {"$nin": ["x", 3]}},
    {"tags": ["x", "y"]}, {"tags": []}, {"n": {"b": 1}}, {"n": {"$exists": True}},
    {"tags": {"$not": {"$in": ["x"]}}}, {"tags": {"$gte": 3}},
    # $size, $all, $type, $mod.
    {"tags": {"$size": 2}}, {"tags": {"$size": 0}}, {"tags": {"$all": ["x"]}},
    {"tags": {"$all": ["x", "y"]}}, {"a": {"$type": "string"}}, {"a": {"$type": "bool"}},
    {"a": {"$type": ["int", "object"]}}, {"b": {"$type": "double"}}, {"tags": {"$type": "null"}},
    {"tags": {"$type": "array"}}, {"a": {"$mod": [2, 1]}}, {"b": {"$mod": [2, 0]}},
    {"tags": {"$elemMatch": {"$eq": "z"}}}, {"tags": {"$elemMatch": {"$gte": 3}}},
    {"tags": {"$elemMatch": {"$in": ["x", None]}}},
    # Dotted paths through arrays of documents.
    {"n.b": 1}, {"n.b": 5}, {"n.b": {"$gt": 2}}, {"n.b": {"$exists": False}}, {"n.b": None},
    {"n.b": {"$ne": 5}}, {"n.b": {"$in": [1, None]}}, {"n.b": {"$nin": [5]}},
    {"n.b": {"$type": "int"}}, {"$or": [{"n.b": 1}, {"tags": "z"}]},
]

# Still to do (issue 13): `$elemMatch` over documents, `$regex`.
KNOWN_DIFFERENT = [
    {"n": {"$elemMatch": {"b": 5}}},
    {"s": {"$regex": "^x", "$options": "i"}},
]

SORTS = ["a", "b", "s", "n", "tags", "_id"]

UPDATES = [
    {"$set": {"x.y": 1, "s": "new"}},
    {"$unset": {"a": "", "n.b": ""}},
    {"$inc": {"cnt": 2}},
    {"$mul": {"cnt": 3}},
    {"$min": {"a": 0}},
    {"$max": {"b": 1}},
    {"$rename": {"s": "t"}},
    {"$push": {"arr": {"$each": [1, 2, 3], "$slice": -2}}},
    {"$push": {"arr": {"$each": ["a", "b"], "$position": 0}}},
    {"$addToSet": {"tags": {"$each": ["x", "q"]}}},
    {"$pull": {"tags": {"$in": ["x", None]}}},
    {"$pull": {"tags": {"$gte": 3}}},
    {"$pop": {"tags": -1}},
    {"$setOnInsert": {"z": 1}, "$set": {"w": True}},
]


def ids(cursor):
    return [d["_id"] for d in cursor]


def without_fold(doc):
    doc = dict(doc)
    doc.pop("_fold", None)
    return doc


@pytest.fixture
def mongo():
    client = pymongo.MongoClient(MONGODB, serverSelectionTimeoutMS=5000)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as e:  # pragma: no cover - CI starts the server
        pytest.fail(f"no MongoDB-wire server at {MONGODB} ({e}); start one with "
                    "`secantusd-py --port 27017 --storage-path DIR` or set VIGIL_TEST_MONGODB")
    name = f"vigil_diff_{os.getpid()}"
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def vdb(request):
    return request.getfixturevalue("db" if request.param == "sqlite" else "pg")


def load(vdb, mongo, name="docs"):
    vdb[name].insert_many(copy.deepcopy(DOCS))
    mongo[name].insert_many(copy.deepcopy(DOCS))
    return vdb[name], mongo[name]


def test_filters_agree_with_mongodb(vdb, mongo):
    mine, theirs = load(vdb, mongo)
    agreed = 0
    for f in AGREE:
        expected = sorted(ids(theirs.find(f, {"_id": 1})))
        assert sorted(ids(mine.find(f, {"_id": 1}))) == expected, f
        assert mine.count_documents(f) == len(expected), f
        agreed += 1
    differing = 0
    for f in KNOWN_DIFFERENT:
        expected = sorted(ids(theirs.find(f, {"_id": 1})))
        try:
            got = sorted(ids(mine.find(f, {"_id": 1})))
        except vigil.InvalidQueryError:
            got = None
        assert got != expected, f"{f} agrees now: move it to AGREE"
        differing += 1
    print(f"filters: {agreed} agree with MongoDB, {differing} known to differ")


def test_sorts_agree_with_mongodb(vdb, mongo):
    mine, theirs = load(vdb, mongo)
    for field in SORTS:
        for direction in (1, -1):
            expected = ids(theirs.find({}, {"_id": 1}).sort([(field, direction), ("_id", 1)]))
            got = ids(mine.find({}, {"_id": 1}).sort([(field, direction), ("_id", 1)]))
            assert got == expected, (field, direction)


def test_updates_and_upserts_agree_with_mongodb(vdb, mongo):
    for i, update in enumerate(UPDATES):
        mine, theirs = load(vdb, mongo, f"u{i}")
        r_theirs = theirs.update_many({}, update)
        r_mine = mine.update_many({}, update)
        assert (r_mine["matched_count"], r_mine["modified_count"]) == \
            (r_theirs.matched_count, r_theirs.modified_count), update
        expected = [without_fold(d) for d in theirs.find().sort("_id", 1)]
        got = [without_fold(d) for d in mine.find().sort("_id", 1)]
        assert got == expected, update
    mine, theirs = load(vdb, mongo, "ups")
    for filter, update in [
        ({"_id": 100, "k": "v"}, {"$inc": {"h": 1}, "$setOnInsert": {"made": True}}),
        ({"_id": 100, "k": "v"}, {"$inc": {"h": 1}, "$setOnInsert": {"made": False}}),
        ({"j": 5, "k": {"$gt": 1}, "n.deep": 2}, {"$set": {"x": 1}}),
        ({"_id": 1}, {"$push": {"tags": "new"}}),
    ]:
        r_theirs = theirs.update_one(filter, update, upsert=True)
        r_mine = mine.update_one(filter, update, upsert=True)
        assert r_mine["matched_count"] == r_theirs.matched_count, filter
        assert (r_mine["upserted_id"] is None) == (r_theirs.upserted_id is None), filter
    strip = lambda d: {k: v for k, v in without_fold(d).items() if k != "_id" or v in (1, 100)}
    assert [strip(d) for d in mine.find().sort("_id", 1) if not isinstance(d["_id"], int)] == \
        [strip(d) for d in theirs.find().sort("_id", 1) if not isinstance(d["_id"], int)]
    assert [without_fold(d) for d in mine.find({"_id": {"$in": [1, 100]}}).sort("_id", 1)] == \
        list(theirs.find({"_id": {"$in": [1, 100]}}).sort("_id", 1))
