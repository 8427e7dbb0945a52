"""Shared fixtures: real databases (a SQLite file per test; PostgreSQL at
$VIGIL_TEST_POSTGRES in a schema of the test's own) and the repository's real MNIST digits."""

import os
import pathlib
import uuid

import pytest

import vigil

REPO = pathlib.Path(__file__).resolve().parents[2]
MNIST = REPO / "data" / "mnist"
POSTGRES = os.environ.get("VIGIL_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")


@pytest.fixture
def db(tmp_path):
    return vigil.connect(f"sqlite://{tmp_path / 'test.db'}", seed=7)


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite://{tmp_path / 'shared.db'}"


@pytest.fixture(scope="session")
def digits():
    """The 10,000 real digits as {"img": PIL image, "class": int} dicts."""
    return vigil.read_mnist(str(MNIST))


@pytest.fixture
def pg():
    schema = "vigil_py_" + uuid.uuid4().hex[:12]
    url = f"{POSTGRES}?schema={schema}"
    try:
        db = vigil.connect(url, seed=7)
    except vigil.BackendError as e:  # pragma: no cover - CI starts the server
        pytest.fail(f"PostgreSQL at {POSTGRES} is not reachable: {e}")
    yield db
    import subprocess
    subprocess.run(["psql", POSTGRES, "-qc", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'],
                   check=False, capture_output=True)
