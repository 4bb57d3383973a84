"""FAISS wrapper: exact and IVF, upsert, delete, filters, persistence."""

import numpy as np
import pytest

from indexing.vectors import VectorIndex, factory_string


def unit(n, d=16, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_factory_by_size():
    assert factory_string(10, 512, exact_below=100, nlist=0, quantizer="flat") == "IDMap2,Flat"
    assert factory_string(10_000, 512, exact_below=100, nlist=0, quantizer="flat") == "IVF400,Flat"
    assert factory_string(10_000, 512, exact_below=100, nlist=64, quantizer="sq8") == "IVF64,SQ8"


@pytest.mark.parametrize("exact_below", [10_000, 100])
def test_search_upsert_delete(exact_below):
    x = unit(2000)
    keys = np.arange(1, 2001)
    vi = VectorIndex(16, exact_below=exact_below, nlist=16, nprobe=16)
    vi.build(keys, x)
    _, found = vi.search(x[:5], 1)
    assert found[:, 0].tolist() == [1, 2, 3, 4, 5]
    vi.upsert(np.array([1]), x[1:2])  # key 1 now holds key 2's vector
    _, found = vi.search(x[:1], 3)
    assert 1 not in found[0].tolist()[:1] or found[0][0] in (1, 2)
    assert vi.ntotal == 2000
    assert vi.remove(np.array([2, 3])) == 2
    _, found = vi.search(x[2:3], 5)
    assert 3 not in found[0].tolist() and vi.ntotal == 1998


def test_filter_mask_restricts_results():
    x = unit(100)
    vi = VectorIndex(16)
    vi.build(np.arange(100), x)
    allowed = np.zeros(100, dtype=bool)
    allowed[[10, 20, 30]] = True
    _, found = vi.search(x[:1], 10, allowed)
    assert set(found[0][found[0] >= 0].tolist()) == {10, 20, 30}


def test_save_load(tmp_path):
    x = unit(50)
    vi = VectorIndex(16)
    vi.build(np.arange(50), x)
    vi.save(tmp_path)
    back = VectorIndex.load(tmp_path, dim=16, factory=vi.factory_)
    assert back.search(x[:3], 1)[1][:, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="expected a 32-d index"):
        VectorIndex.load(tmp_path, dim=32, factory=vi.factory_)
