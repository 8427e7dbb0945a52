"""examples/mnist.ipynb, the seed notebook on vigil, executed end to end on a slice of the
digits; its printed results are checked."""

import os
import re

import nbclient
import nbformat

from conftest import MNIST, REPO


def test_the_notebook_runs_as_written(tmp_path, monkeypatch):
    nb = nbformat.read(REPO / "examples" / "mnist.ipynb", as_version=4)
    for cell in nb.cells:
        cell.outputs = []
    monkeypatch.setenv("VIGIL_NOTEBOOK_DB", f"sqlite://{tmp_path / 'nb.db'}")
    monkeypatch.setenv("VIGIL_NOTEBOOK_LIMIT", "3000")
    monkeypatch.setenv("VIGIL_NOTEBOOK_EPOCHS", "2")
    monkeypatch.setenv("VIGIL_MNIST", str(MNIST))
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = ""
    images = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text += out["text"]
            data = out.get("data", {})
            text += data.get("text/plain", "") + "\n"
            images += "image/png" in data
            assert out.get("output_type") != "error", out
    assert "2700 documents stored" in text
    assert "300 of 300 late inserts predicted" in text
    accuracy = float(re.search(r"final valid accuracy ([0-9.]+)", text).group(1))
    assert accuracy > 0.8, accuracy
    assert "{'img': {'lenet5': " in text
    assert "['mnist/img/lenet5']" in text
    assert images >= 2  # the first digit, and the metric curve
