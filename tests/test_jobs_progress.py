"""What a user sees while waiting: status lines on stderr without a terminal (with a heartbeat), log records
with progress="log", nothing with progress=False; all driven by an injected clock, never by sleeping."""

from __future__ import annotations

import itertools
import logging
import re
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_jobs import RATIO_TABLE, FakeClock, ScriptedJob, SimulatedJob

from xr_openeo import jobs
from xr_openeo.jobs import progress as job_progress

LINE = re.compile(r"^Batch job 'j-\w+': (still )?(\w+) \(progress ([\d]+%|-)\) after (\d+):(\d\d):(\d\d)$")


def parsed(lines: list[str]) -> list[tuple[bool, str, str, int]]:
    """(heartbeat?, status, progress, elapsed seconds) of each status line; any other line fails."""
    out = []
    for line in lines:
        match = LINE.match(line)
        assert match, f"not a status line: {line!r}"
        h, m, s = (int(match.group(i)) for i in (4, 5, 6))
        out.append((bool(match.group(1)), match.group(2), match.group(3), 3600 * h + 60 * m + s))
    return out


@pytest.fixture
def no_terminal(monkeypatch):
    """A process whose stderr is not a terminal and which runs outside Jupyter (CI, cron, `> log 2>&1`)."""
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(job_progress, "stderr_is_terminal", lambda: False)


def test_without_a_terminal_progress_true_prints_status_lines_to_stderr(no_terminal, capsys, caplog):
    clock = FakeClock()
    job = ScriptedJob(
        "created",
        {"status": "queued", "progress": 0},
        {"status": "running", "progress": 40},
        {"status": "running", "progress": 40},
        {"status": "running", "progress": 75.4},
        {"status": "finished", "progress": 100},
    )
    with caplog.at_level(logging.DEBUG, logger="xr_openeo"):
        jobs.wait(job, progress=True, clock=clock, sleep=clock.sleep)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "Batch job 'j-scripted': created (progress -) after 0:00:00",
        "Batch job 'j-scripted': queued (progress 0%) after 0:00:01",
        "Batch job 'j-scripted': running (progress 40%) after 0:00:02",
        "Batch job 'j-scripted': running (progress 75%) after 0:00:04",
        "Batch job 'j-scripted': finished (progress 100%) after 0:00:05",
    ]
    # Printed, not logged: nothing depends on how (or whether) logging is configured.
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_a_line_at_least_every_minute_while_nothing_changes(no_terminal, capsys):
    clock = FakeClock()
    job = SimulatedJob(clock, duration=200)
    jobs.wait(job, clock=clock, sleep=clock.sleep)
    lines = parsed(capsys.readouterr().err.splitlines())
    assert lines == [
        (False, "created", "0%", 0),
        (False, "running", "0%", 1),
        (True, "running", "0%", 61),
        (True, "running", "0%", 121),
        (True, "running", "0%", 181),
        (False, "finished", "100%", round(jobs.polls_until(jobs.PollSchedule().poll_times(), 200)[-1])),
    ]


@pytest.mark.parametrize("duration", sorted(RATIO_TABLE))
def test_the_heartbeat_costs_no_request(no_terminal, capsys, duration):
    """Polls stay on schedule (same status requests as without a display) however often lines are written."""
    clock = FakeClock()
    job = SimulatedJob(clock, duration)
    jobs.wait(job, clock=clock, sleep=clock.sleep)
    assert len(job.describes) == RATIO_TABLE[duration][0]
    lines = parsed(capsys.readouterr().err.splitlines())
    assert lines[-1][1] == "finished"
    assert max(b[3] - a[3] for a, b in itertools.pairwise(lines)) <= 60
    assert len(lines) >= duration // 60


@settings(max_examples=100, deadline=None)
@given(
    duration=st.floats(min_value=0.0, max_value=4 * 3600.0, allow_nan=False),
    latency=st.sampled_from([0.0, 0.05, 0.4]),
    heartbeat=st.sampled_from([5.0, 60.0, 600.0]),
)
def test_no_silence_longer_than_the_heartbeat(duration, latency, heartbeat):
    clock = FakeClock()
    job = SimulatedJob(clock, duration, latency=latency)
    written: list[tuple[float, str]] = []
    display = job_progress.LineDisplay("j-simulated", lambda line: written.append((clock.now, line)), heartbeat)
    waiter = jobs.waiting._Waiter(
        job,
        schedule=jobs.PollSchedule(),
        display=display,
        timeout=None,
        clock=clock,
        sleep=clock.sleep,
        policy=jobs.waiting.RetryPolicy.for_jobs(),
    )
    waiter.run()
    times = [t for t, _ in written]
    # A request in flight (latency) is the only thing that can delay a line.
    assert all(b - a <= heartbeat + latency + 1e-6 for a, b in itertools.pairwise(times))
    assert written[-1][1].startswith("Batch job 'j-simulated': finished")
    assert sum("still" in line for _, line in written) <= clock.now / heartbeat + 1  # and no more often


def test_progress_log_goes_through_logging_only(capsys, caplog):
    clock = FakeClock()
    job = SimulatedJob(clock, duration=130)
    with caplog.at_level(logging.INFO, logger="xr_openeo"):
        jobs.wait(job, progress="log", clock=clock, sleep=clock.sleep)
    assert capsys.readouterr() == ("", "")
    records = [r for r in caplog.records if r.name == "xr_openeo.jobs"]
    assert {r.levelno for r in records} == {logging.INFO}
    lines = parsed([r.getMessage() for r in records])
    assert [heartbeat for heartbeat, *_ in lines] == [False, False, True, True, False]


def test_progress_false_is_silent_even_for_long_jobs(capsys, caplog):
    clock = FakeClock()
    with caplog.at_level(logging.DEBUG, logger="xr_openeo"):
        jobs.wait(SimulatedJob(clock, duration=600), progress=False, clock=clock, sleep=clock.sleep)
    assert capsys.readouterr() == ("", "")
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_explicit_text_lines_and_the_bar_on_a_terminal(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(job_progress, "stderr_is_terminal", lambda: True)
    clock = FakeClock()
    answers = ({"status": "running", "progress": 30}, {"status": "finished", "progress": 100})
    jobs.wait(ScriptedJob(*answers), progress=True, clock=clock, sleep=clock.sleep)
    err = capsys.readouterr().err
    assert "Job j-scripted finished: 100%" in err and "Batch job" not in err  # the tqdm bar
    jobs.wait(ScriptedJob("running", "finished"), progress="text", clock=clock, sleep=clock.sleep)
    assert capsys.readouterr().err.splitlines()[-1] == "Batch job 'j-scripted': finished (progress -) after 0:00:01"


def test_jupyter_keeps_the_widget(monkeypatch):
    class ZMQInteractiveShell:
        config: dict = {}

    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    monkeypatch.setattr(job_progress, "stderr_is_terminal", lambda: False)
    assert job_progress.display_kind(True) == "notebook"


def test_the_text_display_writes_to_the_current_stderr(capsys):
    display = job_progress.make_display("text", "j-1", heartbeat=10)
    display.update("running", 12.5, 3.0)
    assert display.wake_in(3.0) == 10 and display.wake_in(8.0) == 5
    display.tick(12.9)  # not yet due
    display.tick(13.0)
    display.update("running", 12.5, 20.0)  # unchanged, not due
    display.update("running", 12.5, 23.0)  # unchanged, due
    assert capsys.readouterr().err.splitlines() == [
        "Batch job 'j-1': running (progress 12%) after 0:00:03",
        "Batch job 'j-1': still running (progress 12%) after 0:00:13",
        "Batch job 'j-1': still running (progress 12%) after 0:00:23",
    ]
    with pytest.raises(ValueError, match="heartbeat"):
        job_progress.LineDisplay("j-1", print, heartbeat=0)
