"""Every registered method pretrains through the same loop and yields embeddings of one shape."""

import json

import pytest
import torch

from spar.data.windows import WindowData
from spar.models.registry import METHODS
from spar.train import checkpoint
from spar.train.pretrain import pretrain
from test_placement import store, tiny_tree  # noqa: F401  (the tiny three-scene store)


@pytest.fixture(scope="module")
def checkpoints(store, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("methods")
    tree = tiny_tree(root, epochs=2)
    paths = {}
    for method in METHODS:
        paths[method] = root / method / "model.pt"
        pretrain(store, paths[method], method, seed=0, tree=tree, dataset="tiny")
    return paths


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_pretrains_with_finite_loss(checkpoints, method):
    history = json.loads(checkpoints[method].with_name("history.json").read_text())
    if METHODS[method].pretrain_overrides.get("epochs") == 0:
        assert history["epochs"] == []
        return
    assert len(history["epochs"]) == 2
    assert all(torch.isfinite(torch.tensor(epoch["loss"])) for epoch in history["epochs"])
    ckpt = torch.load(checkpoints[method], weights_only=False)
    assert ckpt["objective"] == METHODS[method].objective


def test_methods_share_embedding_shape(checkpoints, store):  # noqa: F811
    data = WindowData.from_store(store, group="s1")
    batch = next(data.batches(4, shuffle=False))
    shapes = {}
    for method, path in checkpoints.items():
        model, _ = checkpoint.load_model(path)
        tokens, valid = model.encode(batch)
        shapes[method] = (tuple(tokens.shape), tuple(valid.shape))
    # 4 windows; 3 nodes x (2 x 2 microphone + 2 x 2 geophone patches) = 24 tokens of width 16
    assert set(shapes.values()) == {((4, 24, 16), (4, 24))}


def test_mask_ratio_use_by_method():
    from spar.models.objectives.base import objective_class

    uses = {name: objective_class(spec.objective).uses_mask_ratio for name, spec in METHODS.items()}

    # the contrastive objectives encode whole views, so a new mask ratio must not rerun them
    for name in ("simclr", "cmc", "cosmo", "focal"):
        assert uses[name] is False, name
    for name in ("spar", "mae", "audiomae", "cav_mae", "freqmae", "phymask"):
        assert uses[name] is True, name
