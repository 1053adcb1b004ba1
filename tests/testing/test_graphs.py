"""Checks on process graphs before they run, and the implicit save_result: pure functions, no server."""

from __future__ import annotations

import copy

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from xr_openeo.testing.graphs import IMPLICIT_FORMAT, GraphError, check_graph, with_save_result

PROCESSES = {"load_collection", "ndvi", "reduce_dimension", "mean", "save_result", "absolute"}
COLLECTIONS = {"S2"}


def check(graph):
    check_graph(graph, processes=PROCESSES, collections=COLLECTIONS)


def ndvi_graph(save: bool = True) -> dict:
    graph = {
        "load": {"process_id": "load_collection", "arguments": {"id": "S2", "spatial_extent": None}},
        "ndvi": {"process_id": "ndvi", "arguments": {"data": {"from_node": "load"}}},
        "reduce": {
            "process_id": "reduce_dimension",
            "arguments": {
                "data": {"from_node": "ndvi"},
                "dimension": "t",
                "reducer": {
                    "process_graph": {
                        "m": {"process_id": "mean", "arguments": {"data": {"from_parameter": "data"}}, "result": True}
                    }
                },
            },
        },
    }
    if save:
        graph["save"] = {
            "process_id": "save_result",
            "arguments": {"data": {"from_node": "reduce"}, "format": "GTiff"},
            "result": True,
        }
    else:
        graph["reduce"]["result"] = True
    return graph


def refused(graph) -> GraphError:
    with pytest.raises(GraphError) as info:
        check(graph)
    return info.value


def test_a_good_graph_passes():
    check(ndvi_graph())
    check(ndvi_graph(save=False))


def test_structure_errors_are_process_graph_invalid():
    for graph in ([], {}, "graph", {"a": "node"}, {"a": {"arguments": {}}}):
        err = refused(graph)
        assert (err.status, err.code) == (400, "ProcessGraphInvalid")
    bad_arguments = ndvi_graph()
    bad_arguments["ndvi"]["arguments"] = [1, 2]
    assert "arguments of node 'ndvi'" in refused(bad_arguments).message
    two_results = ndvi_graph()
    two_results["reduce"]["result"] = True
    assert "it has 2" in refused(two_results).message
    dangling = ndvi_graph()
    dangling["ndvi"]["arguments"]["data"] = {"from_node": "lode"}
    assert "'lode'" in refused(dangling).message


def test_callbacks_are_checked_as_graphs_of_their_own():
    graph = ndvi_graph()
    graph["reduce"]["arguments"]["reducer"]["process_graph"]["m"]["process_id"] = "median"
    err = refused(graph)
    assert err.code == "ProcessUnsupported" and "'median'" in err.message
    graph = ndvi_graph()
    del graph["reduce"]["arguments"]["reducer"]["process_graph"]["m"]["result"]
    assert "callback 'reducer' of node 'reduce'" in refused(graph).message
    # A callback's from_node names nodes of the callback, not of the outer graph.
    graph = ndvi_graph()
    graph["reduce"]["arguments"]["reducer"]["process_graph"]["m"]["arguments"]["data"] = {"from_node": "load"}
    assert "'load'" in refused(graph).message


def test_unknown_processes_and_collections():
    graph = ndvi_graph()
    graph["ndvi"]["process_id"] = "evi"
    assert (refused(graph).status, refused(graph).code) == (400, "ProcessUnsupported")
    graph = ndvi_graph()
    graph["load"]["arguments"]["id"] = "LANDSAT"
    err = refused(graph)
    assert (err.status, err.code) == (404, "CollectionNotFound") and "available: S2" in err.message
    graph["load"]["arguments"]["id"] = {"from_parameter": "collection"}  # not a literal: not checked here
    check(graph)


def test_a_graph_that_saves_is_kept_as_it_is():
    graph = ndvi_graph()
    assert with_save_result(graph) is graph


def test_an_unsaved_graph_gets_an_implicit_save_result():
    graph = ndvi_graph(save=False)
    before = copy.deepcopy(graph)
    saved = with_save_result(graph)
    assert graph == before  # the caller's graph is not changed
    check(saved)
    added = set(saved) - set(graph)
    (save_id,) = added
    assert saved[save_id] == {
        "process_id": "save_result",
        "arguments": {"data": {"from_node": "reduce"}, "format": IMPLICIT_FORMAT},
        "result": True,
    }
    assert "result" not in saved["reduce"]


def test_the_implicit_node_takes_a_free_id():
    graph = {
        "saveresult1": {"process_id": "absolute", "arguments": {"x": -1}},
        "abs": {"process_id": "absolute", "arguments": {"x": {"from_node": "saveresult1"}}, "result": True},
    }
    saved = with_save_result(graph)
    assert saved["saveresult2"]["arguments"]["data"] == {"from_node": "abs"}
    assert saved["saveresult1"] == graph["saveresult1"]


node_ids = st.text(alphabet="abcdefgh", min_size=1, max_size=3)


@st.composite
def chains(draw):
    """A chain of absolute() nodes, each taking the previous one, the last one the result."""
    ids = draw(st.lists(node_ids, min_size=1, max_size=8, unique=True))
    graph = {}
    for i, node_id in enumerate(ids):
        x = {"from_node": ids[i - 1]} if i else draw(st.integers(-5, 5))
        graph[node_id] = {"process_id": "absolute", "arguments": {"x": x}}
    graph[ids[-1]]["result"] = True
    return graph


@given(chains())
def test_every_well_formed_chain_passes_and_saves_its_last_node(graph):
    check(graph)
    saved = with_save_result(graph)
    check(saved)
    (save,) = (n for n in saved.values() if n["process_id"] == "save_result")
    assert save["result"] is True and save["arguments"]["data"]["from_node"] in graph
    assert graph[save["arguments"]["data"]["from_node"]].get("result") is True


@given(chains(), node_ids)
def test_a_reference_to_a_missing_node_is_always_refused(graph, missing):
    assume(missing not in graph)
    first = next(iter(graph))
    graph[first]["arguments"]["x"] = {"from_node": missing}
    err = refused(graph)
    assert err.code == "ProcessGraphInvalid" and repr(missing) in err.message
