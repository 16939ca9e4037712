import json
from dataclasses import replace

import numpy as np
import pytest

from denoisekit import __version__
from denoisekit.errors import DenoiseKitError
from denoisekit.noise import add_noise, apply_recorded, describe, make_noise, noise_slices
from denoisekit.plugin import NoiseKind
from denoisekit.volume import Volume


def body(slices=3, n=64):
    yy, xx = np.mgrid[:n, :n]
    x, y = xx - n // 2, yy - n // 2
    hu = np.full((n, n), -1000.0, np.float32)
    hu[(x / 26) ** 2 + (y / 18) ** 2 < 1] = 40.0
    hu[(x - 10) ** 2 + y**2 < 9] = 1100.0
    return Volume(np.repeat(hu[None], slices, axis=0), spacing=(5.0, 5.0, 3.0))


KINDS = [("gaussian", {"sigma": 15.0}), ("poisson", {}), ("lowdose", {"views": 90, "dose": 0.5})]


@pytest.mark.parametrize("kind,options", KINDS)
def test_record_reproduces_the_output_exactly_even_through_json(kind, options):
    clean = body()
    noisy, record = add_noise(clean, kind, seed=7, **options)
    assert noisy.shape == clean.shape and noisy.array.dtype == np.float32
    assert not np.array_equal(noisy.array, clean.array)
    assert record["kind"] == kind and record["seed"] == 7 and record["denoisekit_version"] == __version__
    again = apply_recorded(clean, json.loads(json.dumps(record)))
    assert np.array_equal(again.array, noisy.array)
    assert noisy.history[-1] == again.history[-1] == describe(record)
    assert noisy.spacing == clean.spacing


@pytest.mark.parametrize("kind,options", KINDS)
def test_padding_outside_the_field_of_view_is_air_to_the_noise_and_kept(kind, options):
    """-3024 HU outside the reconstructed circle: noise as if air were there (as training
    sees it), and the padding back as written."""
    clean = body()
    yy, xx = np.mgrid[:64, :64]
    outside = (yy - 31.5) ** 2 + (xx - 31.5) ** 2 > 31**2
    padded = Volume(np.where(outside, np.float32(-3024.0), clean.array), spacing=clean.spacing)
    in_air = Volume(np.where(outside, np.float32(-1024.0), clean.array), spacing=clean.spacing)
    noisy, _ = add_noise(padded, kind, seed=3, **options)
    assert (noisy.array[:, outside] == -3024.0).all()
    expected, _ = add_noise(in_air, kind, seed=3, **options)
    np.testing.assert_allclose(noisy.array[:, ~outside], expected.array[:, ~outside], atol=1e-3)


@pytest.mark.parametrize("kind,options", KINDS)
def test_seed_decides_the_noise(kind, options):
    clean = body()
    a, _ = add_noise(clean, kind, seed=1, **options)
    b, _ = add_noise(clean, kind, seed=1, **options)
    c, _ = add_noise(clean, kind, seed=2, **options)
    assert np.array_equal(a.array, b.array)
    assert not np.array_equal(a.array, c.array)


def test_description_names_kind_options_and_seed():
    _, record = add_noise(body(1), "lowdose", seed=3, views=90, dose=0.25)
    text = describe(record)
    assert text.startswith("noise lowdose seed=3 ") and " dose=0.25" in text and " views=90" in text


def test_series_description_keeps_the_dose_whatever_other_options_say():
    _, record = add_noise(body(1), "lowdose", seed=3, views=90, dose=0.25, aec="z+angle")
    record = json.loads(json.dumps(record, sort_keys=True))  # as the sidecar stores it
    assert "dose=0.25" in describe(record)[:64] and "aec=z+angle" in describe(record)


def test_progress_reports_every_slice():
    done = []
    add_noise(body(11), "lowdose", seed=0, progress=done.append, views=60)
    assert sum(done) == 11 and len(done) > 1  # batched: more than one report
    done.clear()
    add_noise(body(4), "gaussian", seed=0, progress=done.append)
    assert sum(done) == 4


def test_noise_slices_draws_fresh_reproducible_noise():
    hu = body(2).array
    kind = make_noise("gaussian", sigma=20.0)
    rng = np.random.default_rng(5)
    first, second = noise_slices(hu, kind, rng), noise_slices(hu, kind, rng)
    assert not np.array_equal(first, second)  # the generator advanced
    again = noise_slices(hu, kind, np.random.default_rng(5))
    assert np.array_equal(first, again)
    assert (first - hu).std() == pytest.approx(20.0, rel=0.1)


def test_unknown_kind_and_option_are_user_errors():
    with pytest.raises(DenoiseKitError, match="no noise kind named 'salt'"):
        add_noise(body(1), "salt", seed=0)
    with pytest.raises(DenoiseKitError, match="no option"):
        add_noise(body(1), "gaussian", seed=0, dose=0.5)
    with pytest.raises(DenoiseKitError, match="lacks"):
        apply_recorded(body(1), {"kind": "gaussian"})


def scanned(currents=(100, 200, 400), n=128):
    """A trunk with noise of its own, its variance going as 1 / each slice's tube current, which
    its tags record as a DICOM series' do; enough soft tissue for a relative dose to read."""
    yy, xx = np.mgrid[:n, :n]
    hu = np.full((n, n), -1000.0, np.float32)
    hu[((xx - n // 2) / 50) ** 2 + ((yy - n // 2) / 36) ** 2 < 1] = 40.0
    own = np.random.default_rng(0).normal(0.0, 1.0, (len(currents), n, n)) * 20.0 * np.sqrt(400.0 / np.array(currents))[:, None, None]
    tags = {"TubeCurrents": list(currents), "PatientID": "SYN-001"}
    return Volume((hu[None] + own).astype(np.float32), spacing=(2.5, 2.5, 5.0), tags=tags)


RELATIVE = {"views": 60, "dose": 0.25, "scan_relative": True}


def test_a_kind_gets_the_volume_tags_it_asks_for_and_the_record_keeps_them():
    scan = scanned()
    noisy, record = add_noise(scan, "lowdose", seed=1, **RELATIVE)
    assert record["params"]["TubeCurrents"] == [100, 200, 400] and "PatientID" not in record["params"]
    assert record["notes"] == ["flux from the series' tube current (100-400 mA over 3 slices), scaled to the scan's own noise"]
    again = apply_recorded(replace(scan, tags={}), json.loads(json.dumps(record)))  # the record says them
    assert np.array_equal(again.array, noisy.array)
    for kind, options in (("gaussian", {}), ("lowdose", {"views": 60})):  # only a kind that asks gets them
        assert "TubeCurrents" not in add_noise(scan, kind, seed=1, **options)[1]["params"]


def test_records_from_before_the_tube_currents_still_reproduce():
    scan = scanned()
    before, record = add_noise(replace(scan, tags={}), "lowdose", seed=1, **RELATIVE)  # as a record from before
    assert "TubeCurrents" not in record["params"] and "own noise, pooled" in record["notes"][0]
    assert np.array_equal(apply_recorded(scan, record).array, before.array)  # the volume's tags are not read
    assert not np.array_equal(add_noise(scan, "lowdose", seed=1, **RELATIVE)[0].array, before.array)


def test_any_kind_may_ask_for_volume_tags():
    class Gains(NoiseKind):
        name = "gains"
        volume_tags = ("Gains", "Absent")

        def apply(self, hu, params, spacing=(1.0, 1.0, 1.0)):
            return hu + np.asarray(params["Gains"], np.float32)[:, None, None]

    volume = Volume(np.zeros((2, 4, 4), np.float32), tags={"Gains": [1.0, 2.0], "PatientID": "SYN-001"})
    noisy, record = add_noise(volume, Gains(), seed=0)
    assert record["params"]["Gains"] == [1.0, 2.0] and set(record["params"]) == {"kind", "seed", "Gains"}
    assert noisy.array[1].max() == 2.0 and "notes" not in record


def test_noise_never_makes_padding():
    """Every stage reads values below -1500 HU as padding outside the field of view: photon
    starvation streaks (metal, at a low dose) that went there were kept as is by every model,
    and a DICOM export showed -17571 HU."""
    from denoisekit.volume import PADDING_BELOW

    hu = np.full((2, 32, 32), 40.0, np.float32)
    hu[:, :, :4] = -3024.0  # the scanner's padding
    noisy, record = add_noise(Volume(hu), "gaussian", seed=0, sigma=1000.0)
    body = noisy.array[:, :, 4:]
    assert body.min() == PADDING_BELOW and (body == PADDING_BELOW).sum() > 10
    assert (noisy.array[:, :, :4] == -3024.0).all()  # padding stays as the scanner wrote it
    [note] = record["notes"]
    assert note.startswith(f"{int((body == PADDING_BELOW).sum())} voxels fell below -1500 HU")
    assert np.array_equal(apply_recorded(Volume(hu), record).array, noisy.array)
