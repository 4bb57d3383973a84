"""The source settings and the connector's own bookkeeping, without an RT (tests/test_rt.py runs
the connector against a real one): settings errors name the field, a missing token or an
unconfigured source stop ``caselink sync`` with exit 2 before anything is opened, and the sync
state and RT watermark survive a reopen and refuse garbage."""

from __future__ import annotations

import subprocess

import pytest
from _proc import child_env, cli_command

from caselink.config import load_settings
from caselink.errors import ConfigError
from indexing.sources import SourceError, open_sources
from indexing.sources.rt import _Cursor
from indexing.sources.state import SourceState


def test_settings_name_a_bad_field_mapping_and_need_a_url():
    with pytest.raises(ConfigError, match=r"sources\.rt\.fields.*unknown caselink field 'prod'"):
        load_settings(env={}, sources__rt={"url": "http://rt", "fields": {"prod": "Product"}})
    with pytest.raises(ConfigError, match=r"sources\.rt\.url"):
        load_settings(env={}, sources__rt={"queues": ["General"]})
    s = load_settings(env={}, sources__rt={"url": "http://rt", "fields": {"error_codes": "Error codes"}})
    assert s.sources.rt.queues == ["General"] and s.sources.rt.id_prefix == "RT-"
    assert load_settings(env={}).sources.rt is None and open_sources(load_settings(env={})) == []


def test_token_comes_from_the_variable_or_the_file_and_is_required(tmp_path):
    settings = load_settings(env={}, sources__rt={"url": "http://rt", "token_env": "MY_RT_TOKEN"})
    with pytest.raises(SourceError, match="MY_RT_TOKEN is unset") as info:
        open_sources(settings, env={})
    assert info.value.field == "sources.rt.token_env"
    source = open_sources(settings, env={"MY_RT_TOKEN": "1-2-secret"})[0]
    source.close()
    (tmp_path / "token").write_text("1-2-secret\n", encoding="utf-8")
    settings = load_settings(env={}, sources__rt={"url": "http://rt", "token_file": str(tmp_path / "token"),
                                                  "timezone": "Mars/Olympus"})
    with pytest.raises(SourceError, match="not a time zone") as info:
        open_sources(settings, env={})
    assert info.value.field == "sources.rt.timezone"


def test_attribute_keys_are_checked_as_the_record_bounds_them_before_rt_is_asked():
    env = {"CASELINK_RT_TOKEN": "1-2-secret"}
    for attributes, field, words in [({"customer": "Customer", "serial no": "Serial"}, "sources.rt.attributes.serial no",
                                      "key 'serial no' must be 1-64 ASCII"),
                                     ({f"a{i}": "Customer" for i in range(33)}, "sources.rt.attributes",
                                      "maps 33 keys, a record holds at most 32")]:
        settings = load_settings(env={}, sources__rt={"url": "http://127.0.0.1:9", "attributes": attributes})
        with pytest.raises(SourceError) as info:
            open_sources(settings, env=env)
        assert info.value.field == field and words in info.value.message
    settings = load_settings(env={}, sources__rt={"url": "http://127.0.0.1:9",
                                                  "attributes": {f"a{i}": "Customer" for i in range(32)}})
    open_sources(settings, env=env)[0].close()


def test_sync_of_an_unconfigured_source_exits_2_naming_it(tmp_path):
    done = subprocess.run(cli_command("sync", "jira"), env=child_env(tmp_path / "data"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no source 'jira' is configured" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "data").exists()


def test_state_survives_a_reopen_and_the_watermark_refuses_garbage(tmp_path):
    state = SourceState(tmp_path / "sources.sqlite").open()
    state.applied("rt", "7", "RT-7", "2026-12-01T10:00:00Z", "t1")
    state.noted("rt", "7", "abc123")
    state.set_watermark("rt", _Cursor("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z", 7).dump())
    state.close()
    state = SourceState(tmp_path / "sources.sqlite").open()
    try:
        item = state.item("rt", "7")
        assert (item.record_id, item.version, item.text_hash, item.note_hash) == (
            "RT-7", "2026-12-01T10:00:00Z", "t1", "abc123")
        state.applied("rt", "7", "RT-7", "2026-12-01T12:00:00Z", "t2")  # a new version keeps its note hash
        assert state.item("rt", "7").note_hash == "abc123"
        assert _Cursor.load(state.watermark("rt")) == _Cursor("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z", 7)
        state.forget("rt", "7")
        assert state.items("rt") == [] and state.watermark("other") is None
    finally:
        state.close()
    with pytest.raises(SourceError, match="unreadable"):
        _Cursor.load("not json")
