"""Planning split runs, without running jobs: tiles on the pixel grid, time ranges, graphs, the job database,
the links of many results and the run's progress lines."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xr_openeo.errors import AssetReadError, XrOpenEOError
from xr_openeo.http import Auth, Links
from xr_openeo.http.multi import MultiLinks
from xr_openeo.jobs.jobdb import create_or_resume, open_job_db, pieces_frame, row_piece
from xr_openeo.jobs.pixelgrid import PixelGrid, grid_from_metadata
from xr_openeo.jobs.run_progress import Counts, RunLines
from xr_openeo.jobs.split import Piece, Split, SplitEdgeWarning, plan_pieces, run_key
from xr_openeo.jobs.tiles import tile_windows
from xr_openeo.jobs.timeranges import period, time_ranges

UTM = PixelGrid(32631, (10.0, 10.0), (640000.0, 5690000.0))


def coverage(tiles, area) -> np.ndarray:
    c0, r0, c1, r1 = area
    count = np.zeros((r1 - r0, c1 - c0), dtype=int)
    for _, (a, b, c, d) in tiles:
        count[b - r0 : d - r0, a - c0 : c - c0] += 1
    return count


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 50),
    st.integers(0, 50),
    st.integers(1, 120),
    st.integers(1, 120),
    st.integers(1, 6),
    st.integers(1, 6),
)
def test_tiles_by_count_cover_every_pixel_once_and_differ_by_a_pixel_at_most(c0, r0, w, h, rows, cols):
    area = (c0, r0, c0 + w, r0 + h)
    tiles = tile_windows(UTM, area, Split(tiles=(rows, cols)))
    assert (coverage(tiles, area) == 1).all()
    widths = {c - a for _, (a, _, c, _) in tiles}
    heights = {d - b for _, (_, b, _, d) in tiles}
    assert max(widths) - min(widths) <= 1 and max(heights) - min(heights) <= 1
    assert len(tiles) == min(rows, h) * min(cols, w)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 90), st.integers(1, 90), st.integers(1, 40))
def test_tiles_of_a_size_come_from_split_area_and_cover_every_pixel_once(w, h, pixels):
    area = (3, 7, 3 + w, 7 + h)
    tiles = tile_windows(UTM, area, Split(tile_size=pixels * 10.0))
    assert (coverage(tiles, area) == 1).all()
    assert all(c - a <= pixels and d - b <= pixels for _, (a, b, c, d) in tiles)
    assert len({name for name, _ in tiles}) == len(tiles)
    assert tiles == tile_windows(UTM, area, Split(tile_pixels=pixels))


def test_a_tile_size_is_rounded_to_whole_pixels():
    tiles = tile_windows(UTM, (0, 0, 30, 30), Split(tile_size=104.0))  # 10.4 pixels: tiles of 10
    assert [w for _, w in tiles][:2] == [(0, 0, 10, 10), (10, 0, 20, 10)]
    assert [name for name, _ in tiles][:4] == ["r0c0", "r0c1", "r0c2", "r1c0"]


def test_a_count_picks_tiles_as_square_as_the_area_allows():
    tiles = tile_windows(UTM, (0, 0, 300, 100), Split(tiles=3))
    assert [w for _, w in tiles] == [(0, 0, 100, 100), (100, 0, 200, 100), (200, 0, 300, 100)]


def test_a_users_tiles_are_snapped_outward_clipped_and_named():
    import geopandas
    from shapely.geometry import box

    frame = geopandas.GeoDataFrame(
        {"name": ["west", "east", "far"]},
        geometry=[box(640000, 5689000, 640505, 5690000), box(640495, 5689000, 641000, 5690000), box(0, 0, 1, 1)],
        crs="EPSG:32631",
    )
    area = (0, 0, 100, 100)
    tiles = tile_windows(UTM, area, Split(tile_grid=frame))
    assert tiles == [("west", (0, 0, 51, 100)), ("east", (49, 0, 100, 100))]  # the pixels they touch overlap


def test_the_grid_turns_windows_into_boxes_on_pixel_edges_and_back():
    window = (64, 128, 128, 192)
    box = UTM.bbox(window)
    assert box == (640640, 5688080, 641280, 5688720) and all(isinstance(v, int) for v in box)
    assert UTM.window(box) == window and UTM.window(box, outward=False) == window
    assert UTM.window((640641, 5688081, 641279, 5688719)) == window  # outward: every pixel touched
    lonlat = PixelGrid(4326, (0.0001, 0.0001), (5.0, 52.0))
    assert lonlat.window(lonlat.bbox((3, 4, 7, 9))) == (3, 4, 7, 9)


def test_the_grid_comes_from_the_metadata_when_it_says_enough():
    dims = {
        "x": {"type": "spatial", "axis": "x", "step": 10, "reference_system": 32631, "extent": [600000, 700000]},
        "y": {"type": "spatial", "axis": "y", "step": 10, "reference_system": 32631, "extent": [5600000, 5700000]},
        "t": {"type": "temporal"},
    }
    grid = grid_from_metadata({"cube:dimensions": dims})
    assert grid == PixelGrid(32631, (10.0, 10.0), (600000.0, 5700000.0), (600000.0, 5600000.0, 700000.0, 5700000.0))
    # Metres next to a lon/lat reference system (as backends describe multi-UTM collections): unknown.
    geographic = {k: {**v, "reference_system": 4326} for k, v in dims.items() if k != "t"}
    assert grid_from_metadata({"cube:dimensions": geographic}) is None
    assets = {"assets": {"a": {"proj:epsg": 3035, "proj:transform": [20, 0, 4000000, 0, -20, 3000000]}}}
    assert grid_from_metadata(assets) == PixelGrid(3035, (20.0, 20.0), (4000000.0, 3000000.0))
    # A results document: proj:bbox and proj:shape per asset; the bounds are those of all of them.
    tiles = {
        "a": {"proj:code": "EPSG:32631", "proj:shape": [64, 64], "proj:bbox": [640000, 5689360, 640640, 5690000]},
        "b": {"proj:epsg": 32631, "proj:shape": [64, 32], "proj:bbox": [640640, 5689360, 640960, 5690000]},
    }
    expected = PixelGrid(32631, (10.0, 10.0), (640000.0, 5690000.0), (640000.0, 5689360.0, 640960.0, 5690000.0))
    assert grid_from_metadata({"assets": tiles}) == expected
    assert grid_from_metadata({}) is None


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3000), st.integers(1, 900), st.integers(1, 12))
def test_time_ranges_by_count_cover_the_period_end_to_end(start_day, days, count):
    start = pd.Timestamp("2020-01-01") + pd.Timedelta(days=start_day)
    end = start + pd.Timedelta(days=days)
    ranges = time_ranges((start, end), count)

    def utc(text):
        ts = pd.Timestamp(text)
        return ts.tz_convert(None) if ts.tzinfo is not None else ts

    assert utc(ranges[0][0]) == start and utc(ranges[-1][1]) == end
    assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True))
    assert all(utc(a) < utc(b) for a, b in ranges)
    assert len(ranges) == count if days >= count else len(ranges) <= count


def test_time_ranges_by_frequency_and_by_hand():
    period = (pd.Timestamp("2023-01-15"), pd.Timestamp("2023-04-01"))
    assert time_ranges(period, "MS") == [
        ("2023-01-15", "2023-02-01"),
        ("2023-02-01", "2023-03-01"),
        ("2023-03-01", "2023-04-01"),
    ]
    assert time_ranges(period, [("2023-01-15", "2023-02-15")]) == [("2023-01-15", "2023-02-15")]
    with pytest.raises(ValueError, match="pandas frequency"):
        time_ranges(period, "fortnightly")


def test_split_arguments_are_checked():
    assert Split.of(16) == Split(tiles=16) and Split.of({"tiles": (2, 3), "time": "MS"}) == Split(
        tiles=(2, 3), time="MS"
    )
    with pytest.raises(ValueError, match="one way of tiling"):
        Split(tiles=4, tile_size=1000)
    with pytest.raises(ValueError, match="needs tiles="):
        Split()
    with pytest.raises(ValueError, match="unknown split option"):
        Split.of({"tile": 4})
    with pytest.raises(ValueError, match="tiles must be"):
        Split(tiles=(0, 2))
    with pytest.raises(TypeError, match="split= takes"):
        Split.of("4x4")


GRAPH = {
    "load1": {
        "process_id": "load_collection",
        "arguments": {"id": "SENTINEL2_L2A", "spatial_extent": None, "temporal_extent": None, "bands": ["B04"]},
    },
    "save1": {
        "process_id": "save_result",
        "arguments": {"data": {"from_node": "load1"}, "format": "GTiff"},
        "result": True,
    },
}


def test_a_piece_sets_its_extent_in_the_loading_nodes_only():
    piece = Piece("r0c1_t0", (640640, 5689360, 641280, 5690000), 32631, "2023-01-01", "2023-01-05")
    graph = piece.graph(GRAPH)
    assert graph["load1"]["arguments"]["spatial_extent"] == {
        "west": 640640,
        "south": 5689360,
        "east": 641280,
        "north": 5690000,
        "crs": 32631,
    }
    assert graph["load1"]["arguments"]["temporal_extent"] == ["2023-01-01", "2023-01-05"]
    assert GRAPH["load1"]["arguments"]["spatial_extent"] is None and graph["save1"] == GRAPH["save1"]
    assert run_key(GRAPH, [piece], None) == run_key(dict(GRAPH), [piece], None)
    assert run_key(GRAPH, [piece], {"driver-memory": "4g"}) != run_key(GRAPH, [piece], None)


def test_graphs_a_split_would_change_are_refused_or_warned_about(connection):
    over_time = {
        **GRAPH,
        "reduce1": {"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "load1"}, "dimension": "t"}},
    }
    with pytest.raises(XrOpenEOError, match="combines dates"):
        plan_pieces(over_time, connection, Split(time=2))
    table = {**GRAPH, "agg1": {"process_id": "aggregate_spatial", "arguments": {"data": {"from_node": "load1"}}}}
    with pytest.raises(XrOpenEOError, match="computes a table"):
        plan_pieces(table, connection, Split(tiles=2))
    kernel = {**GRAPH, "k1": {"process_id": "apply_kernel", "arguments": {"data": {"from_node": "load1"}}}}
    with pytest.warns(SplitEdgeWarning, match="apply_kernel"):
        pieces = plan_pieces(kernel, connection, Split(tiles=(2, 2)))
    # No extent: the collection's, from its metadata (256 x 256 pixels of 10 m).
    assert [p.bbox for p in pieces][:2] == [(640000, 5688720, 641280, 5690000), (641280, 5688720, 642560, 5690000)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pieces = plan_pieces(GRAPH, connection, Split(time=3))
    assert [(p.name, p.start, p.end, p.bbox) for p in pieces][0] == ("t0", "2023-01-01", "2023-01-05", None)


def test_the_job_database_writes_atomically_and_keeps_its_types(tmp_path):
    pieces = [Piece(f"r0c{i}", (640000 + 640 * i, 5689360, 640640 + 640 * i, 5690000), 32631) for i in range(3)]
    frame = pieces_frame(pieces, [GRAPH] * 3, run="abc", title="NDVI", description=None, job_options=None)
    for name in ("jobs.csv", "jobs.parquet"):
        db, resumed = create_or_resume(tmp_path / name, frame, "abc")
        assert not resumed
        db.set(1, status="error", error="boom", failures=1)
        again = open_job_db(tmp_path / name).df
        assert list(again["status"]) == ["not_started", "error", "not_started"]
        assert (
            again["error"].dtype == object
            and again["failures"].dtype == "Int64"
            and list(again["failures"]) == [0, 1, 0]
        )
        assert again.crs.to_epsg() == 32631 and again.geometry.iloc[0].bounds == (640000, 5689360, 640640, 5690000)
        assert row_piece(again.loc[2]) == pieces[2]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            p for p in ("jobs.csv", "jobs.parquet") if (tmp_path / p).exists()
        )
        db2, resumed = create_or_resume(tmp_path / name, frame, "abc")
        assert resumed and list(db2.df["status"]) == ["not_started", "error", "not_started"]
        with pytest.raises(XrOpenEOError, match="belongs to another run"):
            create_or_resume(tmp_path / name, frame, "xyz")


def test_pieces_of_time_alone_read_back_from_the_database(tmp_path):
    pieces = [Piece("t0", start="2023-01-01", end="2023-01-05"), Piece("t1", start="2023-01-05", end="2023-01-12")]
    frame = pieces_frame(pieces, [GRAPH] * 2, run="r", title=None, description=None, job_options=None)
    db, _ = create_or_resume(tmp_path / "jobs.csv", frame, "r")
    again = open_job_db(tmp_path / "jobs.csv").df
    assert [row_piece(again.loc[i]) for i in again.index] == pieces and "geometry" not in again.columns


def test_text_columns_stay_text_in_a_csv_database(tmp_path):
    frame = pieces_frame([Piece("007")], [GRAPH], run="0123456789", title=None, description=None, job_options=None)
    create_or_resume(tmp_path / "jobs.csv", frame, "0123456789")
    db, resumed = create_or_resume(tmp_path / "jobs.csv", frame, "0123456789")
    assert resumed and db.df.loc[0, "piece"] == "007" and db.df.loc[0, "run"] == "0123456789"


def test_the_job_database_ignores_updates_that_would_move_a_piece_back(tmp_path):
    frame = pieces_frame([Piece("a"), Piece("b")], [GRAPH] * 2, run="r", title=None, description=None, job_options=None)
    db, _ = create_or_resume(tmp_path / "jobs.csv", frame, "r")
    db.set(0, id="j-1", status="finished")
    db.set(1, id=None, status="not_started", failed_jobs="j-2")
    late = pd.DataFrame({"id": ["j-1", "j-2"], "status": ["queued", "queued"]}, index=[0, 1])
    db.persist(late)  # the late reports of two start requests
    assert list(db.df["status"]) == ["finished", "not_started"] and db.df.loc[1, "id"] is None
    db.persist(pd.DataFrame({"id": ["j-3"], "status": ["queued_for_start"]}, index=[1]))
    assert db.df.loc[1, "status"] == "queued_for_start" and db.df.loc[1, "id"] == "j-3"


AUTH = ("https://openeo.example/openeo/1.2", "secret")


def links(job: str) -> Links:
    base = f"{AUTH[0]}/jobs/{job}/results"
    return Links({"a.tif": f"{base}/assets/a.tif"}, Auth(*AUTH), (base,))


def test_the_links_of_many_results_keep_each_ones_rules():
    multi = MultiLinks({"r0c0": links("j-1"), "r0c1": links("j-2")})
    assert multi.href("r0c1/a.tif").endswith("/jobs/j-2/results/assets/a.tif")
    assert set(multi.hrefs()) == {"r0c0/a.tif", "r0c1/a.tif"}
    assert multi.headers(multi.href("r0c0/a.tif")) == {"Authorization": "Bearer secret"}
    assert multi.headers("https://elsewhere.example/a.tif") == {}
    with pytest.raises(AssetReadError, match="not in the results of these jobs"):
        multi.href("a.tif")
    copy = pickle.loads(pickle.dumps(multi))  # each part pickles without its token, as one job's links do
    assert copy.hrefs() == multi.hrefs() and copy.scope == multi.scope
    assert copy.headers(copy.href("r0c0/a.tif")) == {} and b"secret" not in pickle.dumps(multi)
    allowed = MultiLinks({"r0c0": Links(links("j-1").hrefs(), Auth(*AUTH), links("j-1").sources, pickle_token=True)})
    assert pickle.loads(pickle.dumps(allowed)) == allowed
    other = MultiLinks({"r0c0": links("j-3"), "r0c1": links("j-2")})
    assert other.scope != multi.scope and "secret" not in repr(multi)
    with pytest.raises(ValueError, match="without '/'"):
        MultiLinks({"a/b": links("j-1")})


def test_the_run_display_writes_a_line_per_change_and_a_heartbeat():
    lines: list[str] = []
    display = RunLines("jobs.csv", lines.append, heartbeat=60)
    display.update(Counts(total=4, waiting=4), 0.0)
    display.update(Counts(total=4, running=2, waiting=2), 5.0)
    display.update(Counts(total=4, running=2, waiting=2, results_bytes=10**6), 6.0)  # bytes alone: no line
    display.update(Counts(total=4, running=2, waiting=2, results_bytes=10**6), 66.0)
    head = "Split run 'jobs.csv' (4 pieces):"
    assert lines == [
        f"{head} 0 done, 0 running, 0 queued, 4 to submit, 0 failed; 0 B of results after 0:00:00",
        f"{head} 0 done, 2 running, 0 queued, 2 to submit, 0 failed; 0 B of results after 0:00:05",
        f"{head} still 0 done, 2 running, 0 queued, 2 to submit, 0 failed; 1.0 MB of results after 0:01:06",
    ]
    frame = pd.DataFrame(
        {
            "status": ["finished", "running", "error", None],
            "failures": [0, 2, 3, 0],
            "results_bytes": [5.0, None, None, None],
        }
    )
    # retried: the running piece's 2 failed jobs, and 2 of the 3 of the piece that failed for good
    assert Counts.of(frame) == Counts(total=4, done=1, running=1, waiting=1, failed=1, retried=4, results_bytes=5)
    display.update(Counts(total=4, done=4, results_bytes=3 * 10**6), 70.0)
    display.update(Counts(total=4, done=4, results_bytes=4 * 10**6), 71.0)  # the last piece's size, after its line
    display.close()
    assert lines[-2:] == [
        f"{head} 4 done, 0 running, 0 queued, 0 to submit, 0 failed; 3.0 MB of results after 0:01:10",
        f"{head} 4 done, 0 running, 0 queued, 0 to submit, 0 failed; 4.0 MB of results after 0:01:11",
    ]


def test_item_documents_are_skipped_only_when_they_add_nothing():
    from dataclasses import replace

    from xr_openeo.many import _items_add_nothing
    from xr_openeo.results import AssetSpec, Grid, ResultsInfo
    from xr_openeo.sources import LoadedResults

    grid = Grid("EPSG:32631", (64, 64), (10.0, 0.0, 640000.0, 0.0, -10.0, 5690000.0))
    asset = AssetSpec("openEO_2023-01-01Z.tif", "https://b/a.tif", "image/tiff", bands=("B04",), grid=grid)
    info = ResultsInfo("j-1", "finished", "collection", "1.0.0", (asset,), item_links=("https://b/item",))
    dated = replace(asset, time=np.datetime64("2023-01-01", "ns"))

    def loaded(specs):
        return LoadedResults(info, tuple(specs), None, Auth(), None, None)

    assert _items_add_nothing(loaded([replace(dated, item_id="item")]))
    assert not _items_add_nothing(loaded([replace(dated, item_id="item", nodata=0.0)]))
    assert not _items_add_nothing(loaded([replace(dated, time=np.datetime64("2023-01-02", "ns"))]))


def test_a_run_gives_up_waiting_after_its_timeout_and_says_how_to_resume():
    from xr_openeo.errors import JobTimeoutError
    from xr_openeo.jobs.manager import _Progress
    from xr_openeo.jobs.run_progress import RunDisplay

    now = [100.0]
    listener = _Progress(RunDisplay(), lambda: now[0], timeout=30, name="jobs.csv")
    frame = pd.DataFrame({"status": ["finished", "running"], "failures": [0, 0]})
    now[0] = 129.0
    listener(frame)
    now[0] = 130.0
    with pytest.raises(JobTimeoutError, match=r"split run 'jobs.csv' after 0:00:30.*1 done, 1 running.*re-attach"):
        listener(frame)


def test_the_run_bar_counts_pieces_done(capsys):
    from xr_openeo.jobs.run_progress import RunBar, make_run_display

    bar = make_run_display("bar", "jobs.csv", 4)
    assert isinstance(bar, RunBar)
    bar.update(Counts(total=4, done=1, running=3, results_bytes=2_500_000), 3.0)
    bar.close()
    err = capsys.readouterr().err
    assert "Split run jobs.csv: 1/4" in err and "1 done, 3 running, 0 queued, 0 to submit, 0 failed; 2.5 MB" in err
    assert type(make_run_display(False, "jobs.csv", 4)).__name__ == "RunDisplay"


def test_a_time_split_stays_within_the_collections_dates():
    """A temporal_extent reaching past the collection's last date is cut to it: no piece without data."""
    meta = {"cube:dimensions": {"t": {"type": "temporal", "extent": ["2023-01-01T00:00:00Z", "2023-01-11T00:00:00Z"]}}}
    loader = {"arguments": {"temporal_extent": ["2022-12-01", "2023-01-31"]}}
    assert period(loader, meta) == (pd.Timestamp("2023-01-01"), pd.Timestamp("2023-01-12"))
    assert period({"arguments": {}}, meta) == (pd.Timestamp("2023-01-01"), pd.Timestamp("2023-01-12"))
    assert period({"arguments": {"temporal_extent": ["2023-01-03", "2023-01-05"]}}, meta) == (
        pd.Timestamp("2023-01-03"),
        pd.Timestamp("2023-01-05"),
    )
    with pytest.raises(XrOpenEOError, match="none of them in this temporal_extent"):
        period({"arguments": {"temporal_extent": ["2024-01-01", "2024-02-01"]}}, meta)
