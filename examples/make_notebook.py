"""Writes examples/mnist.ipynb: the seed notebook's cells, in order, on vigil. Run it with
`python examples/make_notebook.py` after editing the cells below; execute it with
`jupyter nbconvert --execute --to notebook --inplace examples/mnist.ipynb` (or nbclient) to
store its outputs."""

import pathlib

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("# Training and maintaining MNIST predictions\n\n"
       "The seed notebook (a classic: LeNet5 on handwritten digits) run *in the database* with "
       "vigil, a Rust engine: the data stays in a SQLite file (or PostgreSQL), the model is "
       "trained on a query, and a listener keeps every document's prediction current."),
    md("Connect. `sqlite://` is an embedded file; `postgres://user@host/db` works the same. "
       "`VIGIL_NOTEBOOK_LIMIT` trims the digits (CI runs a slice)."),
    code("import os, random\n"
         "import vigil\n\n"
         "db = vigil.connect(os.getenv('VIGIL_NOTEBOOK_DB', 'sqlite://notebook.db'), seed=42)\n"
         "db.drop_collection('mnist')\n"
         "db"),
    md("Add data: dicts holding `PIL.Image`s go in as they are (the pixels cross into Rust and "
       "are stored as PNG). The digits come from the repository's MNIST IDX files."),
    code("limit = int(os.getenv('VIGIL_NOTEBOOK_LIMIT', '10000'))\n"
         "data = vigil.read_mnist(os.getenv('VIGIL_MNIST', '../data/mnist'), limit=limit)\n"
         "random.Random(0).shuffle(data)\n"
         "collection = db['mnist']\n"
         "collection.insert_many(data[:-len(data) // 10])\n"
         "print(collection.count_documents(), 'documents stored')"),
    md("Query: documents come back as they went in."),
    code("r = collection.find_one()\n"
         "{k: v for k, v in r.items() if k != 'img'}"),
    code("r['img']"),
    md("The model: LeNet5 as data (layers, not code), with its preprocess (decode, pad to 32x32, "
       "normalise) and postprocess (the most likely class)."),
    code("model = vigil.Model.network('lenet5', vigil.lenet5(10),\n"
         "                            preprocess=vigil.mnist_preprocess(), postprocess='argmax')\n"
         "db.add(model)"),
    code("model.predict([r['img'] for r in data[:10]])"),
    md("Fit, sklearn-style, on a query; validation on the `valid` fold with an accuracy metric."),
    code("job = model.fit(\n"
         "    X='img',\n"
         "    y='class',\n"
         "    db=db,\n"
         "    select=collection.find(),\n"
         "    configuration=vigil.TrainerConfig(\n"
         "        'my_configuration',\n"
         "        loader_kwargs={'batch_size': 64},\n"
         "        epochs=int(os.getenv('VIGIL_NOTEBOOK_EPOCHS', '3')),\n"
         "        validation_interval=20,\n"
         "    ),\n"
         "    metrics=[vigil.Metric('acc', lambda x, y: sum(xx == yy for xx, yy in zip(x, y)) / len(x))],\n"
         "    validation_sets=[vigil.Dataset('my_valid', collection.find({'_fold': 'valid'}))],\n"
         ")\n"
         "job"),
    code("from matplotlib import pyplot as plt\n\n"
         "model = db.load('model', model.identifier)\n"
         "plt.plot(model.metric_values['my_valid/acc'])\n"
         "plt.title('my_valid/acc')\n"
         "plt.show()\n"
         "print('final valid accuracy', model.metric_values['my_valid/acc'][-1])"),
    md("Listen: from now on every document gets `_outputs.img.lenet5`, whoever writes it."),
    code("model.predict(X='img', db=db, select=collection.find(), listen=True)"),
    code("{k: v for k, v in collection.find_one({'_fold': 'valid'}).items() if k != 'img'}"),
    code("db.show('listener')"),
    md("Insert the rest of the data: the listener predicts it."),
    code("late = [dict(r, update=True) for r in data[-len(data) // 10:]]\n"
         "collection.insert_many(late)\n"
         "db.process_pending()  # or a `vigil worker` / `vigil.Worker(db).run()` beside the notebook\n"
         "print(collection.count_documents({'update': True, '_outputs.img.lenet5': {'$exists': True}}),\n"
         "      'of', len(late), 'late inserts predicted')"),
    code("collection.find_one({'update': True})['_outputs']"),
]
nb = nbf.v4.new_notebook(cells=cells, metadata={
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
nbf.write(nb, pathlib.Path(__file__).with_name("mnist.ipynb"))
