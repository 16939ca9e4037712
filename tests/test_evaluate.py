import numpy as np
import pytest
from skimage.metrics import structural_similarity

from denoisekit.errors import DenoiseKitError
from denoisekit.evaluate import draw_figure, evaluate, figure, parse_window, representative_slice
from denoisekit.volume import Volume

WINDOW = (-1000.0, 1000.0)


def _phantom(seed=0, shape=(3, 24, 24)):
    rng = np.random.default_rng(seed)
    ref = np.full(shape, -1000.0, dtype=np.float32)
    ref[:, 4:20, 4:20] = 40.0
    ref[:, 8:12, 8:12] = 1500.0  # bone above the window: clipping matters
    noisy = ref + rng.normal(0, 80, shape).astype(np.float32)
    denoised = ref + rng.normal(0, 20, shape).astype(np.float32)
    return ref, noisy, denoised


def _psnr(ref, test, lo, hi):
    mse = np.mean((np.clip(ref, lo, hi).astype(np.float64) - np.clip(test, lo, hi)) ** 2)
    return 10 * np.log10((hi - lo) ** 2 / mse)


def test_numbers_match_independent_computation():
    ref, noisy, den = _phantom()
    result = evaluate(den, ref, noisy, WINDOW)
    lo, hi = WINDOW
    r, d, n = (np.clip(a, lo, hi).astype(np.float64) for a in (ref, den, noisy))
    overall = result["overall"]
    assert result["window"] == [lo, hi]
    assert overall["psnr"] == pytest.approx(_psnr(ref, den, lo, hi), rel=1e-9)
    assert overall["rmse"] == pytest.approx(np.sqrt(np.mean((r - d) ** 2)), rel=1e-9)
    expected_ssim = np.mean([structural_similarity(a, b, data_range=hi - lo) for a, b in zip(r, d)])
    assert overall["ssim"] == pytest.approx(expected_ssim, rel=1e-6)
    assert overall["gain"]["psnr"] == pytest.approx(_psnr(ref, den, lo, hi) - _psnr(ref, noisy, lo, hi), rel=1e-9)
    assert overall["gain"]["rmse"] == pytest.approx(np.sqrt(np.mean((r - n) ** 2)) - np.sqrt(np.mean((r - d) ** 2)), rel=1e-9)
    assert overall["gain"]["psnr"] > 0 and overall["gain"]["ssim"] > 0
    for k, s in enumerate(result["per_slice"]):
        assert s["slice"] == k
        assert s["psnr"] == pytest.approx(_psnr(ref[k], den[k], lo, hi), rel=1e-9)
        assert s["ssim"] == pytest.approx(structural_similarity(r[k], d[k], data_range=hi - lo), rel=1e-6)
        assert s["noisy"]["rmse"] == pytest.approx(np.sqrt(np.mean((r[k] - n[k]) ** 2)), rel=1e-9)


def test_window_changes_the_numbers():
    ref, _, den = _phantom()
    narrow = evaluate(den, ref, window=(-160.0, 240.0))["overall"]
    assert narrow["psnr"] == pytest.approx(_psnr(ref, den, -160, 240), rel=1e-9)
    assert narrow["psnr"] != pytest.approx(evaluate(den, ref)["overall"]["psnr"])
    assert "gain" not in narrow


def test_identical_volumes_give_infinite_psnr_and_unit_ssim():
    ref, _, _ = _phantom()
    overall = evaluate(ref.copy(), ref)["overall"]
    assert overall["psnr"] == float("inf") and overall["rmse"] == 0.0
    assert overall["ssim"] == pytest.approx(1.0)
    both = evaluate(ref.copy(), ref, ref.copy())["overall"]
    assert both["gain"] == {"psnr": 0.0, "ssim": 0.0, "rmse": 0.0}  # inf - inf was nan


def test_slices_too_small_for_ssim_keep_their_psnr_and_rmse():
    """Slices under 3 pixels on a side stopped evaluate with a bare ValueError (code review)."""
    ref = np.zeros((2, 2, 5), dtype=np.float32)
    result = evaluate(ref + 10.0, ref, ref + 20.0)
    assert result["overall"]["ssim"] is None and result["overall"]["rmse"] == pytest.approx(10.0)
    assert result["overall"]["gain"]["psnr"] == pytest.approx(20 * np.log10(2.0))
    assert all(s["ssim"] is None and s["gain"]["ssim"] is None for s in result["per_slice"])


def test_mismatches_are_refused():
    ref, noisy, den = _phantom()
    with pytest.raises(DenoiseKitError, match="shape"):
        evaluate(den[:2], ref)
    with pytest.raises(DenoiseKitError, match="noisy and reference differ in shape"):
        evaluate(den, ref, noisy[:, :20])
    a = Volume(den, spacing=(0.7, 0.7, 2.5))
    b = Volume(ref, spacing=(0.7, 0.7, 5.0))
    with pytest.raises(DenoiseKitError, match="spacing"):
        evaluate(a, b)


def test_parse_window():
    assert parse_window("-1350,150") == (-1350.0, 150.0)
    for bad in ("1000", "a,b", "100,-100"):
        with pytest.raises(DenoiseKitError):
            parse_window(bad)
    for bad in ("-inf,inf", "0,inf", "nan,1"):
        with pytest.raises(DenoiseKitError, match="must be finite HU values"):
            parse_window(bad)


def test_representative_slice_has_median_error():
    ref = np.zeros((3, 8, 8), dtype=np.float32)
    den = ref + np.array([5.0, 50.0, 20.0], dtype=np.float32)[:, None, None]
    assert representative_slice(ref, den) == 2


def test_the_figure_s_slice_is_read_in_the_scores_window_and_mask():
    """The slice was chosen over all voxels in -1000..1000 whatever --mask and --window said:
    with a mask on two slices the figure showed a slice no score had read (code review)."""
    ref = np.zeros((5, 8, 8), dtype=np.float32)
    den = ref + np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32)[:, None, None]
    mask = np.zeros(ref.shape, bool)
    mask[3:] = True
    assert representative_slice(ref, den) == 2
    assert representative_slice(ref, den, mask=mask) == 4  # of slices 3 and 4, the median (upper) one
    den[1, :4] += 500.0  # an error past the window's top: clipped away in a window that ends at 100
    assert representative_slice(ref, den, window=(-100, 3.5)) == 2
    assert representative_slice(ref, den) == 3  # the clipped error moved slice 1 up the order
    fig = draw_figure(ref, None, den, window=(-100, 3.5), mask=None)
    assert np.array_equal(fig.axes[0].images[0].get_array(), ref[2])
    fig = draw_figure(Volume(ref), None, Volume(den), mask=mask)
    assert "slice 4 of 0..4" in fig._suptitle.get_text()


def test_the_figure_shows_a_slice_as_viewers_do_whatever_order_the_voxels_are_stored_in():
    """A NIfTI from dcm2niix stores an axial scan's rows posterior first: its figure came out
    upside down (code review). Shown as a DICOM viewer shows the scan: anterior at the top, the
    patient's right on the left; coronal and sagittal slices with superior at the top."""
    from denoisekit.evaluate import as_shown

    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(as_shown(Volume(image[None]))(image), image)  # DICOM's axial order
    assert np.array_equal(as_shown(image)(image), image)  # an array has no orientation
    rows_up = Volume(image[None, ::-1], direction=(1, 0, 0, 0, -1, 0, 0, 0, -1))  # dcm2niix's rows
    assert np.array_equal(as_shown(rows_up)(image[::-1]), image)
    mirrored = Volume(image[None, :, ::-1], direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert np.array_equal(as_shown(mirrored)(image[:, ::-1]), image)
    coronal = Volume(image[None], direction=(1, 0, 0, 0, 0, 1, 0, 1, 0))  # rows run superior: shown flipped
    assert np.array_equal(as_shown(coronal)(image), image[::-1])
    coronal_down = Volume(image[None], direction=(1, 0, 0, 0, 0, -1, 0, -1, 0))  # DICOM's coronal order
    assert np.array_equal(as_shown(coronal_down)(image), image)
    swapped = Volume(image.T[None], direction=(0, 1, 0, 1, 0, 0, 0, 0, -1))  # columns along y, rows along x
    assert np.array_equal(as_shown(swapped)(image.T), image)

    ref, noisy, den = _phantom()
    ref[:, 2, 12] = 900.0  # a mark near the top of the slice as a viewer shows it
    grid = dict(direction=(1, 0, 0, 0, -1, 0, 0, 0, -1))
    flipped = [Volume(np.ascontiguousarray(v[:, ::-1]), **grid) for v in (ref, noisy, den)]
    fig = draw_figure(*flipped, slice_index=1)
    shown = fig.axes[0].images[0].get_array()
    assert shown[2, 12] == 900.0 and np.array_equal(shown, ref[1])
    difference = [ax for ax in fig.axes if ax.get_title().startswith("noisy - reference")][0]
    np.testing.assert_array_equal(difference.images[0].get_array(), noisy[1] - ref[1])


def test_figure_is_written(tmp_path):
    import matplotlib.image

    ref, noisy, den = _phantom()
    path = figure(Volume(ref), Volume(noisy), Volume(den), tmp_path / "fig.png")
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[1] > image.shape[0]  # 4 columns, 2 rows
    assert image[..., :3].std() > 0.05  # not blank
    figure(ref, None, den, tmp_path / "no_noisy.png")
    assert (tmp_path / "no_noisy.png").stat().st_size > 1000


def test_figure_window_names_aliases_and_explicit_windows():
    from denoisekit.evaluate import LUNG_WINDOW, SOFT_TISSUE_WINDOW, figure_window

    assert figure_window("brain") == ("brain", (0.0, 80.0))
    assert figure_window("Lung") == ("lung", LUNG_WINDOW)
    for name in ("soft-tissue", "soft_tissue", "soft tissue"):
        assert figure_window(name) == ("soft tissue", SOFT_TISSUE_WINDOW)
    assert figure_window("mediastinum")[1] == SOFT_TISSUE_WINDOW
    assert figure_window("bone")[1][1] > 1000
    assert figure_window("-100,100") == ("", (-100.0, 100.0))
    with pytest.raises(DenoiseKitError, match="unknown figure window 'liver'.*lung, soft-tissue, mediastinum, brain, bone"):
        figure_window("liver")
    for bad in ("80,0", "40,40", "0,inf", "nan,100"):
        with pytest.raises(DenoiseKitError, match="must have finite HI above LO"):
            figure_window(bad)


def _titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_figure_rows_follow_the_chosen_windows_and_label_them_in_hu():
    from denoisekit.evaluate import draw_figure, figure_window

    ref, noisy, den = _phantom()
    default = draw_figure(ref, noisy, den)
    assert sum("lung [-1350,150] HU" in t for t in _titles(default)) == 3  # reference, noisy, denoised
    assert sum("soft tissue [-160,240] HU" in t for t in _titles(default)) == 3

    fig = draw_figure(ref, None, den, windows=[figure_window("brain"), figure_window("-50,150")])
    grid = fig.axes[0].get_subplotspec().get_gridspec()
    assert grid.get_geometry() == (2, 3)  # a row per window; reference, denoised, difference
    brain = [ax for ax in fig.axes if "brain [0,80] HU" in ax.get_title()]
    assert len(brain) == 2 and all(ax.images[0].get_clim() == (0.0, 80.0) for ax in brain)
    assert sum("\n[-50,150] HU" in t for t in _titles(fig)) == 2
    assert not any("lung" in t for t in _titles(fig))


def test_the_difference_is_shown_on_the_noise_scale_in_every_row():
    """It was a quarter of each row's window: +-375 HU in the lung row, where 20 HU of noise
    left by a denoiser is invisible."""
    from denoisekit.evaluate import difference_span, draw_figure, figure_window

    ref, noisy, den = _phantom()
    grid = dict(origin=(0.0, 0.0, -30.0), spacing=(1.0, 1.0, 2.5))
    fig = draw_figure(Volume(ref, **grid), Volume(noisy, **grid), Volume(den, **grid), slice_index=1)
    k_noise = np.abs(noisy[1].astype(np.float64) - ref[1])
    span = difference_span(ref[1], noisy[1])
    assert np.percentile(k_noise, 99) <= span < 2.5 * np.percentile(k_noise, 99)
    assert span in {m * 10.0 ** e for m in (1, 2, 5) for e in range(4)}
    # what the denoiser left, then (it was the same panel again) the noise it was given, one scale
    differences = [ax for ax in fig.axes if " - reference" in ax.get_title()]
    assert [ax.get_title().split("\n")[0] for ax in differences] == ["denoised - reference", "noisy - reference"]
    assert all(ax.images[0].get_clim() == (-span, span) for ax in differences)
    assert all(f"±{span:g} HU" in ax.get_title() for ax in differences)
    np.testing.assert_array_equal(differences[1].images[0].get_array(), noisy[1] - ref[1])
    one = draw_figure(Volume(ref[:1], **grid), None, Volume(den[:1], **grid))
    assert one._suptitle.get_text() == "the one slice, at -30.0 mm"
    titles = [ax.get_title().split("\n")[0] for ax in one.axes if " - reference" in ax.get_title()]
    assert titles == ["denoised - reference"] * 2  # no noisy input: what the denoiser left, in each row
    single = draw_figure(Volume(ref, **grid), Volume(noisy, **grid), Volume(den, **grid), slice_index=1,
                         windows=[figure_window("lung")])
    assert single.axes[0].get_subplotspec().get_gridspec().get_geometry() == (1, 5)
    titles = [ax.get_title().split("\n")[0] for ax in single.axes if " - reference" in ax.get_title()]
    assert titles == ["denoised - reference", "noisy - reference"]  # one row: both, side by side
    assert fig._suptitle.get_text() == f"slice 1 of 0..{len(ref) - 1}, at -27.5 mm"  # as the per-slice table says
    padded = ref.copy()
    padded[1, :4] = -3024.0  # the field of view's edge is no noise
    assert difference_span(padded[1], np.where(padded[1] < -1500, -1000.0, noisy[1])) == span
    assert difference_span(ref[1], ref[1]) == 1.0


def test_figure_replaces_only_its_own_png_and_only_with_force(tmp_path):
    ref, noisy, den = _phantom()
    notes = tmp_path / "notes.png"
    notes.write_text("my notes")
    with pytest.raises(DenoiseKitError, match="not a figure denoisekit wrote"):
        figure(ref, noisy, den, notes, force=True)
    assert notes.read_text() == "my notes"
    from matplotlib.figure import Figure

    theirs = tmp_path / "screenshot.png"  # a PNG, but someone else's picture
    Figure(figsize=(1, 1)).savefig(theirs, format="png")
    before = theirs.read_bytes()
    with pytest.raises(DenoiseKitError, match="not a figure denoisekit wrote"):
        figure(ref, noisy, den, theirs, force=True)
    assert theirs.read_bytes() == before
    theirs.unlink()
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(DenoiseKitError, match="is a directory"):
        figure(ref, noisy, den, tmp_path / "folder.png", force=True)
    with pytest.raises(DenoiseKitError, match=r"must end in \.png"):
        figure(ref, noisy, den, tmp_path / "fig.pdf")

    path = figure(ref, noisy, den, tmp_path / "fig.png")
    first = path.read_bytes()
    with pytest.raises(DenoiseKitError, match="already exists"):
        figure(ref, noisy, den, path)
    figure(ref, None, den, path, force=True)
    assert path.read_bytes() != first and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "folder.png", "notes.png"]  # no temp left


def test_failed_figure_leaves_the_old_one_and_no_temp(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    ref, noisy, den = _phantom()
    path = figure(ref, noisy, den, tmp_path / "fig.png")
    before = path.read_bytes()

    def broken(self, fname, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError):
        figure(ref, None, den, path, force=True)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def _chest(shape=(2, 48, 48)):
    """A body with lungs (holes below the body threshold) on a thin table line, in air."""
    y, x = np.mgrid[: shape[1], : shape[2]]
    ref = np.full(shape, -1000.0, dtype=np.float32)
    body = ((y - 22) / 16.0) ** 2 + ((x - 24) / 20.0) ** 2 < 1
    lungs = (((y - 22) / 8.0) ** 2 + ((np.abs(x - 24) - 9) / 5.0) ** 2) < 1
    ref[:, body] = 40.0
    ref[:, lungs] = -850.0
    ref[:, 44, 4:44] = 200.0  # the table: one pixel thick
    return ref, body, lungs


def test_body_mask_fills_the_lungs_and_leaves_out_air_and_table():
    from denoisekit.evaluate import body_mask

    ref, body, lungs = _chest()
    mask = body_mask(ref)
    assert mask[:, lungs].all()
    assert not mask[:, 44, 4:44].any()
    assert (mask[0] == body).mean() > 0.99  # the opening may nibble the ellipse's rim


def test_body_mask_leaves_out_a_thick_table_under_the_body():
    from denoisekit.evaluate import body_mask

    ref, body, _ = _chest()
    ref[:, 40:46, 2:46] = 0.0  # a 6-pixel slab: the opening does not remove it, its shape does
    assert not body_mask(ref)[:, 42, 2:46].any()
    assert (body_mask(ref)[0] == body).mean() > 0.99


def test_body_mask_keeps_both_legs():
    from denoisekit.evaluate import body_mask

    y, x = np.mgrid[:48, :48]
    ref = np.full((1, 48, 48), -1000.0, np.float32)
    legs = ((y - 24) ** 2 + (x - 14) ** 2 < 81) | ((y - 24) ** 2 + (x - 34) ** 2 < 64)
    ref[0, legs] = 40.0
    assert (body_mask(ref)[0] == legs).mean() > 0.99


def test_mask_body_leaves_the_air_out_of_every_score():
    ref, body, _ = _chest()
    rng = np.random.default_rng(1)
    den = ref + rng.normal(0, 10, ref.shape).astype(np.float32)
    den[:, ~body] += 300.0  # wrong only in the air and on the table
    whole = evaluate(den, ref, window=WINDOW)
    inside = evaluate(den, ref, window=WINDOW, mask="body")
    assert inside["overall"]["psnr"] == pytest.approx(_psnr(ref[:, body], den[:, body], *WINDOW), abs=0.2)
    assert inside["overall"]["psnr"] > whole["overall"]["psnr"] + 10
    assert inside["mask"]["what"] == "body" and inside["mask"]["fraction"] == pytest.approx(body.mean(), abs=0.02)
    assert all(abs(s["voxels"] - body.sum()) < 0.01 * body.sum() for s in inside["per_slice"])


def test_a_label_mask_must_share_the_grid_and_mark_something():
    ref, noisy, den = _phantom()
    labels = np.zeros(ref.shape, np.float32)
    labels[1] = 1.0  # only the middle slice
    result = evaluate(den, ref, noisy, WINDOW, mask=labels)
    assert [s["psnr"] is None for s in result["per_slice"]] == [True, False, True]
    assert result["overall"]["psnr"] == pytest.approx(_psnr(ref[1], den[1], *WINDOW), rel=1e-6)
    with pytest.raises(DenoiseKitError, match="mask and reference differ in shape"):
        evaluate(den, ref, mask=labels[:2])
    with pytest.raises(DenoiseKitError, match="marks no voxel"):
        evaluate(den, ref, mask=np.zeros(ref.shape, np.float32))


def test_slices_carry_their_position_on_the_axis_they_are_stacked_along():
    ref, noisy, den = _phantom()
    vol = lambda a, d: Volume(a, spacing=(1.0, 1.0, 2.5), origin=(0.0, 0.0, -40.0), direction=d)  # noqa: E731
    axial = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert [s["location_mm"] for s in evaluate(vol(den, axial), vol(ref, axial), window=WINDOW)["per_slice"]] == [
        -40.0, -37.5, -35.0]
    flipped = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows right to left, stack head to feet: z still z
    assert [s["location_mm"] for s in evaluate(vol(den, flipped), vol(ref, flipped), window=WINDOW)["per_slice"]] == [
        -40.0, -42.5, -45.0]
    assert [s["location_mm"] for s in evaluate(den, ref, window=WINDOW)["per_slice"]] == [None] * 3


def test_a_mask_only_on_a_slices_border_has_no_ssim_there_but_the_rest_is_scored():
    ref, noisy, den = _phantom(shape=(2, 24, 24))
    labels = np.zeros(ref.shape, np.float32)
    labels[0, 4:20, 4:20] = 1.0
    labels[1, 0:2, :] = 1.0  # within half an SSIM window of the edge: no SSIM is read there
    result = evaluate(den, ref, noisy, WINDOW, mask=labels)
    first, second = result["per_slice"]
    assert first["ssim"] is not None and second["ssim"] is None and second["gain"]["ssim"] is None
    assert second["psnr"] == pytest.approx(_psnr(ref[1, 0:2], den[1, 0:2], *WINDOW), rel=1e-6)
    assert result["overall"]["ssim"] is not None


def test_one_slice_volumes_compare_in_plane_only():
    """A 2-D label file (slice spacing 1 by convention) fits a one-slice reference read from
    DICOM (its slice thickness): there is no spacing between slices to disagree on."""
    ref, noisy, den = _phantom(shape=(1, 24, 24))
    labels = np.ones(ref.shape, np.float32)
    scored = evaluate(Volume(den, spacing=(0.7, 0.7, 5.0)), Volume(ref, spacing=(0.7, 0.7, 5.0)), window=WINDOW,
                      mask=Volume(labels, spacing=(0.7, 0.7, 1.0)))
    assert scored["mask"]["voxels"] == labels.size
    with pytest.raises(DenoiseKitError, match="differ in spacing"):
        evaluate(Volume(den, spacing=(0.7, 0.7, 5.0)), Volume(ref, spacing=(0.7, 0.7, 5.0)), window=WINDOW,
                 mask=Volume(labels, spacing=(0.8, 0.7, 1.0)))


def test_a_figure_no_file_can_be_made_for_is_refused_before_any_work(tmp_path):
    """`--figure /proc/x.png` failed after scoring, naming its hidden temporary file (new-user pass)."""
    from denoisekit.evaluate import check_figure_path

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DenoiseKitError, match=r"cannot write .*notes.txt/x.png: .*notes.txt is a file, not a folder"):
        check_figure_path(tmp_path / "notes.txt" / "x.png", force=False)
    check_figure_path(tmp_path / "new" / "x.png", force=False)
