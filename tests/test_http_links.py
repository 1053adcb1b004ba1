"""Links: current hrefs, the token's scope, expiry by an injected clock, renewal once per expiry, pickles and copies."""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scripted_http import Answer, scripted_server

import xr_openeo
from xr_openeo.errors import AssetReadError, URLExpiredError
from xr_openeo.http import Auth, Links, clear_caches, fetch

NOW = 1_800_000_000.0


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def results_doc(server, expires: int, tag: str = "") -> dict:
    """A results document whose two assets are served (signed until ``expires``) by ``server``."""
    assets = {
        key: {"href": server.url(f"/files/{key}?expires={expires}&signature=sig{tag}{expires}"), "type": "image/tiff"}
        for key in ("a.tif", "b.tif")
    }
    return {"type": "Collection", "stac_version": "1.1.0", "id": "j-1", "assets": assets, "links": []}


def test_pickles_carry_the_token_only_when_allowed():
    auth = Auth("https://openeo.example/openeo/1.2", "oidc/provider/s3cr3t-t0k3n")
    links = Links({"a": "https://openeo.example/openeo/1.2/jobs/j/results/assets/a"}, auth, ("https://x/results",))
    blob = pickle.dumps(links)
    assert b"s3cr3t-t0k3n" not in blob
    restored = pickle.loads(blob)
    assert restored.auth == Auth(auth.root, None) and restored.href("a") == links.href("a")
    assert restored.sources == links.sources and restored.hrefs() == links.hrefs()
    allowed = Links(links.hrefs(), auth, links.sources, pickle_token=True)
    assert pickle.loads(pickle.dumps(allowed)).auth == auth
    assert "s3cr3t" not in repr(links) and "with token" in repr(links)


def test_copies_are_equivalent_objects_with_the_token():
    auth = Auth("https://b/openeo", "basic//t")
    links = Links({"a": "https://b/openeo/a"}, auth, ("https://b/openeo/jobs/j/results",))
    for other in (copy.copy(links), copy.deepcopy(links)):
        assert other is not links and other == links and hash(other) == hash(links)
        assert other.auth == auth and other.headers("https://b/openeo/a") == {"Authorization": "Bearer basic//t"}
    assert links != Links({"a": "https://b/openeo/a"}, Auth("https://b/openeo", "basic//other"), links.sources)


@given(
    hrefs=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40).map(lambda p: f"https://h/{p}")),
    token=st.none() | st.text(min_size=1, max_size=20),
    pickle_token=st.booleans(),
)
def test_pickle_round_trip(hrefs, token, pickle_token):
    links = Links(hrefs, Auth("https://h", token), ("https://h/jobs/j/results",), pickle_token=pickle_token)
    restored = pickle.loads(pickle.dumps(links))
    assert restored.hrefs() == links.hrefs() and restored.pickle_token == pickle_token
    assert restored.auth.token == (token if pickle_token else None)


def test_expiry_by_the_injected_clock():
    clock = Clock()
    long = f"https://h/a?expires={int(NOW) + 3600}"
    short = f"https://h/a?expires={int(NOW) + 20}"
    links = Links({"long": long, "short": short}, Auth(), clock=clock)
    assert not links.expired(long) and not links.expired(short) and not links.expired("https://h/unsigned")
    clock.now = NOW + 3600 - 6
    assert not links.expired(long)
    clock.now = NOW + 3600 - 4  # within the 5 s margin
    assert links.expired(long) and links.expired(short)
    clock.now = NOW + 19
    assert not links.expired(short)  # short-lived links get no margin
    # A link that had expired by this clock when it was received: the clock is off; the server decides.
    stale = f"https://h/a?expires={int(NOW) - 10}"
    assert not Links({"a": stale}, Auth(), clock=Clock()).expired(stale)


def test_renewal_happens_once_per_expiry_however_many_threads_notice():
    clock = Clock()
    with scripted_server() as server, xr_openeo.set_options(retries=0):
        old, new = int(NOW) + 60, int(NOW) + 7200
        url = server.script("/results", Answer.json(results_doc(server, new)))
        links = Links(
            {k: v["href"] for k, v in results_doc(server, old)["assets"].items()}, Auth(), (url,), clock=clock
        )
        copies = [links, copy.copy(links), pickle.loads(pickle.dumps(links))]
        clock.now = NOW + 61
        stale = links.href("a.tif")
        assert links.expired(stale)
        fresh: list[str] = []
        threads = [
            threading.Thread(target=lambda i=i: fresh.append(copies[i % 3].renew("a.tif", stale))) for i in range(12)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert server.count("/results") == 1
        assert set(fresh) == {results_doc(server, new)["assets"]["a.tif"]["href"]}
        assert all(c.href("b.tif").endswith(f"sig{new}") for c in copies)  # every copy, every asset renewed
        assert links.refreshes == 1 and not links.expired(links.href("a.tif"))


def test_renewal_finds_a_renamed_key_by_its_file_and_says_why_it_fails():
    with scripted_server() as server, xr_openeo.set_options(retries=0):
        doc = results_doc(server, 99)
        renamed = {"type": "Collection", "stac_version": "1.1.0", "id": "j-1", "links": []}
        renamed["assets"] = {"other-key": doc["assets"]["a.tif"]}
        url = server.script("/results", Answer.json(renamed))
        links = Links({"a.tif": server.url("/files/a.tif?expires=1&signature=x")}, Auth(), (url,))
        assert links.renew("a.tif", links.href("a.tif")) == doc["assets"]["a.tif"]["href"]
        with pytest.raises(URLExpiredError, match="has no asset 'b.tif'") as info:
            stale = server.url("/files/b.tif?expires=1&signature=x")
            Links({"b.tif": stale}, Auth(), (url,)).renew("b.tif", stale)
        assert info.value.key == "b.tif" and "signature=REDACTED" in info.value.href
        with pytest.raises(URLExpiredError, match="no results URL"):
            Links({"a": "https://h/a?expires=1"}, Auth()).renew("a", "https://h/a?expires=1")
        with pytest.raises(AssetReadError, match="not in the results document"):
            Links({}, Auth()).href("missing")


def test_sources_valid_by_the_clock_and_usable_without_a_token_are_tried_first():
    clock = Clock()
    with scripted_server() as server, xr_openeo.set_options(retries=0):
        doc = Answer.json(results_doc(server, int(NOW) + 7200))
        expired = server.script("/canonical-old", doc) + f"?expires={int(NOW) + 60}&signature=a"
        needs_token = server.script("/openeo/jobs/j-1/results", Answer(401))
        fine = server.script("/canonical", doc) + f"?expires={int(NOW) + 3600}&signature=b"
        links = Links(
            {"a.tif": server.url("/files/a.tif?expires=1&signature=x")},
            Auth(server.url("/openeo"), None),  # unpickled without the token
            (needs_token, expired, fine),
            clock=clock,
        )
        clock.now = NOW + 120
        links.renew("a.tif", links.href("a.tif"))
        assert [r.path.split("?")[0] for r in server.requests] == ["/canonical"]


def test_fetch_renews_refused_links_once_and_clear_caches_forgets_renewals():
    with scripted_server() as server, xr_openeo.set_options(retries=0):
        doc = results_doc(server, 2000000000)
        server.script("/results", Answer.json(doc))
        server.script("/files/a.tif", Answer(403), Answer(200, b"DATA"))
        links = Links({"a.tif": server.url("/files/a.tif?expires=1&signature=old")}, Auth(), (server.url("/results"),))
        assert fetch("a.tif", links) == (b"DATA", 4, True)
        assert server.count("/results") == 1 and server.count("/files/a.tif") == 2
        server.script("/files/b.tif", Answer(403))
        links_b = Links(
            {"b.tif": server.url("/files/b.tif?expires=1&signature=old")}, Auth(), (server.url("/results"),)
        )
        with pytest.raises(AssetReadError, match="HTTP 403") as info:
            fetch("b.tif", links_b)  # refused again with the fresh link: not an expiry
        assert info.value.status == 403 and server.count("/files/b.tif") == 2
        again = Links({"a.tif": doc["assets"]["a.tif"]["href"]}, Auth(), (server.url("/results"),))
        assert again.refreshes == 2  # a's and b's: the renewal state of these results is shared in this process...
        clear_caches()
        assert Links({"a.tif": "x"}, Auth(), (server.url("/results"),)).refreshes == 0  # ...until cleared
