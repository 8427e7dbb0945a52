"""vigil: bring machine-learning models to the data.

Documents with images and tensors live in your database (SQLite file, PostgreSQL); models are
trained on queries and kept predicting on every change, by a Rust engine::

    import vigil
    db = vigil.connect("sqlite://mnist.db")
    mnist = db["mnist"]
    mnist.insert_many(vigil.read_mnist("data/mnist", limit=1000))   # {"img": PIL image, "class": 7}
    model = vigil.Model.network("lenet5", vigil.lenet5(10),
                                preprocess=vigil.mnist_preprocess(), postprocess="argmax")
    db.add(model)
    model.fit(X="img", y="class", db=db, select=mnist.find(),
              configuration=vigil.TrainerConfig("my_configuration", max_iterations=100),
              metrics=[vigil.Metric("acc")],
              validation_sets=[vigil.Dataset("my_valid", mnist.find({"_fold": "valid"}))])
    model.predict(X="img", db=db, select=mnist.find(), listen=True)
    mnist.find_one({"_fold": "valid"})["_outputs"]             # {"img": {"lenet5": 7}}

Every database, model and training call releases the GIL, so other Python threads run.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Iterable, List, Optional

from . import _vigil
from ._vigil import (
    BackendError,
    Collection,
    CommandCursor,
    Cursor,
    DecodeError,
    Encoded,
    Error,
    InvalidDocumentError,
    InvalidQueryError,
    ModelError,
    NotFoundError,
    lenet5,
    mnist_preprocess,
    read_mnist,
)

__all__ = [
    "connect", "Datalayer", "Collection", "CommandCursor", "Cursor", "Model", "TrainerConfig", "Metric",
    "Dataset", "Worker", "Encoded", "lenet5", "mnist_preprocess", "read_mnist", "Error",
    "NotFoundError", "InvalidQueryError", "InvalidDocumentError", "DecodeError", "ModelError",
    "BackendError",
]


def connect(url: str, *, seed: Optional[int] = None,
            valid_probability: Optional[float] = None) -> "Datalayer":
    """Connects to a database: ``sqlite://PATH`` (created if missing), ``sqlite::memory:``,
    ``postgres://USER@HOST:PORT/DB[?schema=NAME]``. ``seed`` makes the ``_fold`` draws
    reproducible; ``valid_probability`` (default 0.05) is the share drawn as ``valid``."""
    return Datalayer(_vigil.connect(url, seed=seed, valid_probability=valid_probability))


class TrainerConfig:
    """How to train: ``TrainerConfig("my_configuration", batch_size=64, epochs=3,
    validation_interval=50)``. Also ``max_iterations``, ``seed``, ``patience``, ``best_by``,
    ``objective`` (``"cross_entropy"`` or ``"mse"``) and ``optimizer``. Unset fields take
    vigil's defaults (Adam at 1e-3, batches of 64, one epoch, validation every 100 steps)."""

    def __init__(self, identifier: str, **fields: Any) -> None:
        self.identifier = identifier
        self.fields = dict(fields)
        if "loader_kwargs" in self.fields:  # the seed notebook's spelling of the batch size
            loader = self.fields.pop("loader_kwargs") or {}
            if "batch_size" in loader:
                self.fields.setdefault("batch_size", loader["batch_size"])
        if "max_iterations" in self.fields and "epochs" not in self.fields:
            self.fields["epochs"] = None  # bounded by iterations alone, as asked

    def to_dict(self) -> Dict[str, Any]:
        return {"identifier": self.identifier, **self.fields}


class Metric:
    """A metric recorded on every validation set: accuracy by default, or any
    ``function(predictions, targets) -> float`` (registered in this process)."""

    def __init__(self, identifier: str, function: Optional[Callable[[list, list], float]] = None):
        self.identifier = identifier
        if function is None:
            self.function = "accuracy"
        else:
            _vigil.register_metric_function(identifier, function)
            self.function = identifier

    def to_dict(self) -> Dict[str, Any]:
        return {"identifier": self.identifier, "function": self.function}


class Dataset:
    """A named selection of documents, e.g. a validation set:
    ``Dataset("my_valid", mnist.find({"_fold": "valid"}))``."""

    def __init__(self, identifier: str, select: Any = None, *, collection: Optional[str] = None,
                 filter: Optional[dict] = None) -> None:
        self.identifier = identifier
        if select is not None:
            collection, filter = _selection(select)
        if collection is None:
            raise TypeError("a Dataset needs select=collection.find(...) or collection=")
        self.collection = collection
        self.filter = filter or {}

    def to_dict(self) -> Dict[str, Any]:
        return {"identifier": self.identifier, "collection": self.collection,
                "filter": self.filter}


def _selection(select: Any):
    if isinstance(select, Cursor):
        return select.collection_name, select.filter
    if isinstance(select, Collection):
        return select.name, {}
    raise TypeError("select is a cursor (collection.find({...})) or a collection")


class _Bar:
    """A progress bar: tqdm's (notebook-aware) when installed, else a plain one on stderr that
    redraws in place on a terminal and prints a line every 10% elsewhere (a notebook, a log)."""

    def __init__(self, total: int, desc: str) -> None:
        self.desc = desc
        self.total = total
        self._shown = -1
        self._tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        try:
            from tqdm.auto import tqdm  # type: ignore
            self._tqdm = tqdm(total=total or None, desc=desc)
        except ImportError:
            self._tqdm = None

    def update_to(self, n: int, postfix: str = "") -> None:
        if self._tqdm is not None:
            self._tqdm.update(n - self._tqdm.n)
            if postfix:
                self._tqdm.set_postfix_str(postfix)
            return
        step = int(100 * n / self.total) if self.total else 0
        if not self._tty:
            step -= step % 10
        if step == self._shown and n != self.total:
            return
        self._shown = step
        width = 30
        done = width * step // 100
        line = f"{self.desc} [{'=' * done}{' ' * (width - done)}] {n}/{self.total or '?'} {postfix}"
        sys.stderr.write(("\r" + line) if self._tty else (line + "\n"))
        sys.stderr.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        elif self._tty:
            sys.stderr.write("\n")


class Model:
    """A model: preprocess -> forward -> postprocess. Build one with ``Model.network``,
    ``Model.onnx``, ``Model.pytorch`` or ``Model.python``; ``db.load("model", name)`` returns
    a stored one."""

    def __init__(self, native: "_vigil.Model") -> None:
        self._native = native

    @staticmethod
    def network(identifier: str, spec: Any, *, seed: int = 42, preprocess: Any = None,
                postprocess: Any = None, batch_size: Optional[int] = None) -> "Model":
        """A declarative network (``spec`` a dict or JSON, e.g. ``vigil.lenet5(10)``)."""
        return Model(_vigil.Model.network(identifier, spec, seed=seed, preprocess=preprocess,
                                          postprocess=postprocess, batch_size=batch_size))

    @staticmethod
    def onnx(identifier: str, graph: Any, *, preprocess: Any = None, postprocess: Any = None,
             batch_size: Optional[int] = None) -> "Model":
        """An ONNX graph (bytes, or a path), e.g. exported from PyTorch."""
        return Model(_vigil.Model.onnx(identifier, graph, preprocess=preprocess,
                                       postprocess=postprocess, batch_size=batch_size))

    @staticmethod
    def pytorch(identifier: str, spec: Any, path: str, *, preprocess: Any = None,
                postprocess: Any = None, batch_size: Optional[int] = None) -> "Model":
        """A declarative network with weights from a PyTorch ``state_dict`` file (.pth)."""
        return Model(_vigil.Model.pytorch(identifier, spec, path, preprocess=preprocess,
                                          postprocess=postprocess, batch_size=batch_size))

    @staticmethod
    def python(identifier: str, function: Callable[[list], list], *,
               batch_size: int = 256) -> "Model":
        """A Python callable ``function(inputs) -> outputs`` over batches, predicting in this
        process (stored by name: a ``vigil.Worker(db, models={identifier: function})`` runs
        it elsewhere)."""
        return Model(_vigil.Model.python(identifier, function, batch_size=batch_size))

    @property
    def identifier(self) -> str:
        return self._native.identifier

    @property
    def version(self) -> Optional[int]:
        return self._native.version

    @property
    def metric_values(self) -> Dict[str, List[float]]:
        """Values recorded by validations, by key (``"my_valid/acc"``): lists of floats."""
        return self._native.metric_values

    @property
    def record(self) -> Dict[str, Any]:
        return self._native.record

    def features(self, identifier: str, layer: str) -> "Model":
        """A model running this network up to ``layer`` (and the ReLU after it), with the
        same weights: that layer's values as a vector per input, for ``db.vector_index``."""
        return Model(self._native.features(identifier, layer))

    def predict(self, inputs: Optional[Iterable[Any]] = None, *, X: Optional[str] = None,
                db: Optional["Datalayer"] = None, select: Any = None, listen: bool = False,
                **_ignored: Any) -> Any:
        """``model.predict([img, ...])`` returns outputs. ``model.predict(X="img", db=db,
        select=collection.find(), listen=True)`` switches a listener on (the model must be
        added), runs its backfill here, and returns the listener's status."""
        if inputs is not None:
            return self._native.predict_many(inputs)
        if X is None or db is None or select is None:
            raise TypeError("predict(inputs) or predict(X=..., db=..., select=..., listen=True)")
        collection, filter = _selection(select)
        if self.version is None:
            db.add(self)
        if not listen:
            raise TypeError("predicting over a query writes outputs: pass listen=True "
                            "(outputs are kept current from then on)")
        on = db.listen(collection, X, self.identifier, select=filter)
        db.process_pending(progress=True, total=on["backfill"]["total"])
        return db.listener_status(on["listener"]["name"])

    def fit(self, X: str, y: str, db: "Datalayer", select: Any,
            configuration: TrainerConfig, metrics: Iterable[Metric] = (),
            validation_sets: Iterable[Dataset] = (), progress: bool = True,
            **_ignored: Any) -> Dict[str, Any]:
        """Trains on field ``X`` to predict ``y`` over ``select``'s train fold; the best
        checkpoint becomes a new version with its ``metric_values``."""
        return db.fit(self, X=X, y=y, select=select, configuration=configuration,
                      metrics=metrics, validation_sets=validation_sets, progress=progress)

    def __repr__(self) -> str:
        return repr(self._native)


class Datalayer:
    """A database: collections (``db["mnist"]``), the registry, listeners, jobs."""

    def __init__(self, native: "_vigil.Datalayer") -> None:
        self._native = native

    def __getitem__(self, name: str) -> Collection:
        return self._native.collection(name)

    def collection(self, name: str) -> Collection:
        return self._native.collection(name)

    def list_collection_names(self) -> List[str]:
        return self._native.list_collection_names()

    def drop_collection(self, name: str) -> bool:
        return self._native.drop_collection(name)

    def add(self, model: Model) -> int:
        """Stores a model (a new version if the identifier exists); returns the version."""
        return self._native.add_model(model._native)

    def load(self, kind: str, identifier: str, version: Optional[int] = None) -> Any:
        """A stored model (``kind="model"``) or another component's record."""
        if kind == "model":
            return Model(self._native.load_model(identifier, version))
        return self._native.load_record(kind, identifier, version)[1]

    def show(self, kind: str, identifier: Optional[str] = None,
             version: Optional[int] = None) -> Any:
        """Identifiers of a kind; the versions of one; or one version's record."""
        if identifier is None:
            return self._native.show_kind(kind)
        if version is None:
            return self._native.show_versions(kind, identifier)
        return self._native.load_record(kind, identifier, version)[1]

    def remove(self, kind: str, identifier: str, version: Optional[int] = None) -> int:
        """Removes a version, or every version (a listener is switched off first)."""
        return self._native.remove(kind, identifier, version)

    def fit(self, model: Model, X: str, y: str, select: Any, configuration: TrainerConfig,
            metrics: Iterable[Metric] = (), validation_sets: Iterable[Dataset] = (),
            progress: bool = True) -> Dict[str, Any]:
        """Trains ``model`` (see ``Model.fit``), with a progress bar unless
        ``progress=False``."""
        bar: List[_Bar] = []
        last: Dict[str, str] = {"v": ""}

        def on_progress(event: Dict[str, Any]) -> None:
            if event["event"] == "started":
                bar.append(_Bar(event["total_steps"], "training"))
            elif event["event"] == "step" and bar:
                bar[0].update_to(event["iteration"], f"loss {event['loss']:.4f} {last['v']}")
            elif event["event"] == "validated":
                last["v"] = " ".join(f"{k} {v:.4f}" for k, v in event["values"])

        try:
            return self._native.fit_model(
                model._native, X, y, select, configuration.to_dict(),
                [m.to_dict() for m in metrics], [d.to_dict() for d in validation_sets],
                on_progress if progress else None)
        finally:
            for b in bar:
                b.close()

    def listen(self, collection: Any, key: str, model: Any, select: Any = None,
               version: Optional[int] = None) -> Dict[str, Any]:
        """Switches a listener on; its backfill is queued (run it with
        ``process_pending()`` or a worker)."""
        if isinstance(collection, Collection):
            collection = collection.name
        if isinstance(model, Model):
            model = model.identifier
        if isinstance(select, Cursor):
            select = select.filter
        return self._native.listen(collection, key, model, select, version)

    def process_pending(self, progress: bool = False, total: int = 0) -> Dict[str, int]:
        """Runs every listener's due work in this process until none is due."""
        if not progress:
            return self._native.process_pending()
        bar = _Bar(total, "predicting")
        try:
            return self._native.process_pending(
                lambda t: bar.update_to(t["written"] + t["removed"] + t["unchanged"]
                                        + t["parked"]))
        finally:
            bar.close()

    def listener_status(self, name: str) -> Dict[str, Any]:
        return self._native.listener_status(name)

    def vector_index(self, identifier: str, listener: str, measure: str = "cosine",
                     approximate_above: Optional[int] = None) -> int:
        """Indexes a listener's vector outputs for ``collection.like(...)``; ``measure`` is
        ``"cosine"``, ``"l2"`` or ``"dot"``. Returns the index's registry version."""
        return self._native.vector_index(identifier, listener, measure, approximate_above)

    def vector_index_status(self, identifier: str) -> Dict[str, Any]:
        return self._native.vector_index_status(identifier)

    def listeners(self) -> List[Dict[str, Any]]:
        return self._native.listeners()

    def jobs(self, limit: int = 20) -> List[Dict[str, Any]]:
        return self._native.jobs(limit)

    def errors(self, listener: Optional[str] = None) -> List[Dict[str, Any]]:
        return self._native.errors(listener)

    def retry_parked(self, listener: str) -> int:
        """Queues the documents ``listener`` parked after failing again, for the next worker
        (after fixing what made them fail); returns how many."""
        return self._native.retry_parked(listener)

    def __repr__(self) -> str:
        return repr(self._native)


class Worker:
    """Computes listener work in this Python process, like ``vigil worker`` but able to run
    Python-callable models: ``vigil.Worker(db, models={"my_model": fn}).run()``. Same
    guarantees: outputs are applied with their dequeueing in one transaction, so a worker
    killed at any moment loses and duplicates nothing. A model call running past
    ``time_limit`` seconds is split until the documents that hang stand alone; they, and
    documents the model fails on, are retried ``max_attempts`` times with backoff, then parked
    (see ``db.errors()``)."""

    def __init__(self, db: Datalayer, models: Optional[Dict[str, Callable[[list], list]]] = None,
                 *, batch_size: int = 256, lease_seconds: float = 30.0,
                 time_limit: float = 300.0, max_attempts: int = 5) -> None:
        self.db = db
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.time_limit = time_limit
        self.max_attempts = max_attempts
        for name, function in (models or {}).items():
            _vigil.register_model_function(name, function)

    def run(self, stop_after_idle: Optional[float] = None) -> Dict[str, int]:
        """Works until Ctrl-C (KeyboardInterrupt), or until idle ``stop_after_idle`` seconds."""
        return self.db._native.run_worker(batch_size=self.batch_size,
                                          lease_seconds=self.lease_seconds,
                                          stop_after_idle=stop_after_idle,
                                          time_limit=self.time_limit,
                                          max_attempts=self.max_attempts)

    def drain(self) -> Dict[str, int]:
        """Processes what is due, then returns."""
        return self.db._native.process_pending()
