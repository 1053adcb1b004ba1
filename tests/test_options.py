"""xr_openeo.set_options: call or context manager; keyword beats set_options beats environment beats default."""

from __future__ import annotations

import pytest
import xarray as xr

import xr_openeo
from xr_openeo._options import get_option

ENV = "XR_OPENEO_ON_READ_ERROR"


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


def test_default_is_raise():
    assert get_option("on_read_error") == "raise"


def test_context_manager_restores_also_after_an_error():
    with xr_openeo.set_options(on_read_error="fill"):
        assert get_option("on_read_error") == "fill"
        with xr_openeo.set_options(on_read_error="raise"):
            assert get_option("on_read_error") == "raise"
        assert get_option("on_read_error") == "fill"
    assert get_option("on_read_error") == "raise"
    with pytest.raises(KeyError), xr_openeo.set_options(on_read_error="fill"):
        raise KeyError("boom")
    assert get_option("on_read_error") == "raise"


def test_as_a_call_it_lasts_until_reset():
    xr_openeo.set_options(on_read_error="fill")
    try:
        assert get_option("on_read_error") == "fill"
    finally:
        xr_openeo.set_options(on_read_error=None)
    assert get_option("on_read_error") == "raise"


def test_keyword_beats_set_options_beats_environment(monkeypatch):
    monkeypatch.setenv(ENV, "fill")
    assert get_option("on_read_error") == "fill"  # read when needed, not at import
    with xr_openeo.set_options(on_read_error="raise"):
        assert get_option("on_read_error") == "raise"
        assert get_option("on_read_error", "fill") == "fill"
    assert get_option("on_read_error", "raise") == "raise"


@pytest.mark.parametrize("bad", ["ignore", "Fill", 1, True])
def test_bad_values_name_the_allowed_ones(bad, monkeypatch):
    with pytest.raises(ValueError, match="'raise', 'fill'"):
        xr_openeo.set_options(on_read_error=bad)
    assert get_option("on_read_error") == "raise"  # nothing was set
    # Checked before anything else happens: no source is looked at, no job is submitted.
    with pytest.raises(ValueError, match="'raise', 'fill'"):
        xr_openeo.open_results(42, on_read_error=bad)
    with pytest.raises(ValueError, match="'raise', 'fill'"):
        xr_openeo.compute_batch(None, on_read_error=bad)
    with pytest.raises(ValueError, match="'raise', 'fill'"):
        xr.open_dataset("https://h.example/openeo/1.2/jobs/j-1/results", engine="openeo", on_read_error=bad)
    monkeypatch.setenv(ENV, str(bad))
    with pytest.raises(ValueError, match=f"{ENV} must be one of 'raise', 'fill'"):
        xr_openeo.open_results(42)


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="unknown option.*on_read_error"):
        xr_openeo.set_options(on_read_eror="fill")


def test_set_options_reaches_the_readers_of_both_fronts(backend, connection):
    cube = connection.load_collection("SENTINEL2_L2A", bands=["B04"])
    job = cube.create_job(out_format="GTiff")
    job.start_and_wait(max_poll_interval=0.1, print=lambda *a: None)

    def reader_choice(ds):
        values = ds.B04.variable._data  # the engine's (wrapped) lazily indexed array, or a dask array
        while hasattr(values, "array"):
            values = values.array
            if hasattr(values, "share"):  # the engine's band array, over the cube it reads
                return values.share.cube.on_read_error
        graph = dict(ds.B04.data.__dask_graph__())
        (choice,) = {v.on_read_error for v in graph.values() if hasattr(v, "on_read_error")}
        return choice

    with xr_openeo.set_options(on_read_error="fill"):
        assert reader_choice(xr_openeo.open_results(job)) == "fill"
        assert reader_choice(xr.open_dataset(job, engine="openeo")) == "fill"
        assert reader_choice(xr_openeo.open_results(job, on_read_error="raise")) == "raise"
    assert reader_choice(xr_openeo.open_results(job)) == "raise"
