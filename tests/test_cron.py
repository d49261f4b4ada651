"""docker/cron.py, the runner's scheduler: its reading of crontab lines. That it fires in the
container, as the image's user, is proven by tests/test_stack_containers.py."""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytest.importorskip("cronsim", reason="docker/cron.py needs cronsim, which needs Python 3.11 (the image's)")
spec = importlib.util.spec_from_file_location("docker_cron", REPO / "docker" / "cron.py")
cron = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = cron  # dataclasses look their module up there
spec.loader.exec_module(cron)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_the_images_crontab_runs_nightly_at_02_15():
    [entry] = cron.parse_crontab((REPO / "docker" / "crontab").read_text())
    assert entry.matches(at("2026-11-27T02:15"))
    assert not entry.matches(at("2026-11-27T02:16")) and not entry.matches(at("2026-11-27T14:15"))
    assert entry.command.startswith("movielens-als-cron ")


def test_fields_read_as_cron_reads_them():
    [entry] = cron.parse_crontab("*/20 8-10,22 * 1-6/5 1-5 echo hi\n")  # steps, ranges, lists, a stepped range
    due = [at(f"2026-06-01T{h:02}:{m:02}") for h in (8, 9, 10, 22) for m in (0, 20, 40)]  # a Monday in June
    assert [
        t for t in (at("2026-06-01T00:00") + dt.timedelta(minutes=n) for n in range(24 * 60)) if entry.matches(t)
    ] == due
    assert entry.matches(at("2026-01-05T08:00"))  # January, the range's first month; June is 1 + 5
    assert not entry.matches(at("2026-02-02T08:00")) and not entry.matches(at("2026-11-02T08:00"))
    assert not entry.matches(at("2026-06-06T22:40"))  # a Saturday
    assert entry.command == "echo hi"


def test_sunday_is_0_and_7_and_restricted_days_match_either_way():
    for sunday in ("0", "7", "sun"):
        [entry] = cron.parse_crontab(f"0 0 * * {sunday} true")
        assert entry.matches(at("2026-11-29T00:00")) and not entry.matches(at("2026-11-30T00:00"))
    # Both day fields restricted: the 1st of the month or a Monday, as in cron.
    [either] = cron.parse_crontab("0 0 1 * 1 true")
    assert either.matches(at("2026-11-01T00:00")) and either.matches(at("2026-11-30T00:00"))
    assert not either.matches(at("2026-11-29T00:00"))
    # A day field that starts with a star is unrestricted to cron even with a step: both must match.
    [both] = cron.parse_crontab("0 0 */2 * 1 true")
    assert both.matches(at("2026-11-09T00:00"))  # the 9th, a Monday
    assert not both.matches(at("2026-11-30T00:00")) and not both.matches(at("2026-11-03T00:00"))
    # Day-of-month alone, ranges of weekdays, and the month's last day.
    [payday] = cron.parse_crontab("30 6 L * * true")
    assert payday.matches(at("2026-02-28T06:30")) and not payday.matches(at("2026-03-28T06:30"))
    [weekdays] = cron.parse_crontab("0 9 * * mon-fri true")
    assert [weekdays.matches(at(f"2026-11-{d}T09:00")) for d in range(23, 30)] == [True] * 5 + [False] * 2


def test_comments_and_blank_lines_are_skipped():
    entries = cron.parse_crontab("# m h dom mon dow command\n\n  # indented\n* * * * * a b  c\n")
    assert [e.command for e in entries] == ["a b  c"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * * * echo", "line 1: expected 5 time fields and a command"),
        ("60 * * * * echo", "line 1: bad minute in '60 * * * *'"),
        ("* 1-x * * * echo", "line 1: bad hour in '* 1-x * * *'"),
        ("*/0 * * * * echo", "line 1: bad minute in '*/0 * * * *'"),
        ("5-1 * * * * echo", "line 1: bad minute in '5-1 * * * *'"),
        ("# never\n0 0 30 2 * echo", "line 2: bad day-of-month in '0 0 30 2 *'"),  # 30 February
        ("# only a comment\n", "the crontab has no entries"),
    ],
)
def test_a_bad_crontab_is_refused_saying_where(text, message):
    with pytest.raises(cron.CrontabError, match=message.replace("*", r"\*")):
        cron.parse_crontab(text)


def test_the_command_refuses_a_bad_crontab_before_it_starts(tmp_path):
    crontab = tmp_path / "crontab"
    crontab.write_text("61 * * * * echo\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "docker" / "cron.py"), str(crontab)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"cron: {crontab}: line 1: bad minute in '61 * * * *'" in result.stderr
