"""examples/scan_relative_check.py: the evenness check behind docs/noise.md's --scan-relative numbers."""

import numpy as np


def _series_with_currents(tmp_path, currents):
    """A 128-pixel body scanned at ``currents`` mA per slice (noise variance as 1 / mA), as a
    DICOM series that records them."""
    import pydicom

    from denoisekit.io import write_volume
    from denoisekit.noise import add_noise
    from denoisekit.volume import Volume

    yy, xx = np.mgrid[:128, :128] - 64
    hu = np.where((xx / 52.0) ** 2 + (yy / 36.0) ** 2 < 1, 40.0, -1000.0).astype(np.float32)
    clean = Volume(np.repeat(hu[None], len(currents), axis=0), spacing=(2.5, 2.5, 3.0))
    slices = [add_noise(Volume(hu[None], spacing=clean.spacing), "lowdose", seed=k, dose=mA / 400.0)[0].array[0]
              for k, mA in enumerate(currents)]
    series = write_volume(clean.derive(np.stack(slices), "scanned"), tmp_path / "series")
    for path in sorted(series.iterdir()):
        ds = pydicom.dcmread(path)
        ds.XRayTubeCurrent = currents[int(ds.InstanceNumber) - 1]
        ds.save_as(path)
    return series


def test_the_check_reports_growth_per_block_with_and_without_the_currents(example, tmp_path, capsys):
    series = _series_with_currents(tmp_path, [200, 200, 400, 400])
    assert example("scan_relative_check").main([str(series), "--block", "2", "--one-scale"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("4 slices, relative dose 0.25 (target x2.00), blocks of 2")
    rows = {line.split(":")[0]: line for line in out[1:]}
    assert set(rows) == {"without the currents", "with the currents", "one scale"}
    for name, line in rows.items():
        growth = float(line.split("x")[1].split()[0])
        blocks = [float(b) for b in line.split("blocks ")[1].split(";")[0].split()]
        assert 1.5 < growth < 2.6 and len(blocks) == 2, line
        if name == "with the currents":  # 200 then 400 mA: both blocks' own noise doubles
            assert all(1.6 < b < 2.4 for b in blocks), line
