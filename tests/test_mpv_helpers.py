"""The mpv host's pure parts: option parsing, redaction, path resolution, OSD policy."""
import pytest

pytest.importorskip("mpv")

from playbacksync.hosts.mpv import (OsdPolicy, PlayerError, parse_mpv_args, redact_text,  # noqa: E402
                                         redact_url, resolve_path)


@pytest.mark.parametrize("args, options, targets", [
    (["--vo=null", "--ao=null"], {"vo": "null", "ao": "null"}, []),
    (["--fs", "--no-osc", "--speed=2.5"], {"fs": "yes", "osc": "no", "speed": "2.5"}, []),
    (["--sub-file=/a b/c.srt", "extra.mkv"], {"sub-file": "/a b/c.srt"}, ["extra.mkv"]),
    (["--title=x=y"], {"title": "x=y"}, []),
    (["--", "--weird-name.mkv"], {}, ["--weird-name.mkv"]),
    (["-"], {}, ["-"]),
])
def test_parse_mpv_args(args, options, targets):
    assert parse_mpv_args(args) == (options, targets)


def test_parse_mpv_args_refuses_an_empty_option():
    with pytest.raises(PlayerError, match="--="):
        parse_mpv_args(["--="])


@pytest.mark.parametrize("url, shown", [
    ("http://h:8096/Videos/1/stream?api_key=SECRET", "http://h:8096/Videos/1/stream?…"),
    ("https://user:pw@h/x.mkv#frag", "https://h/x.mkv?…"),
    ("https://h/x.mkv", "https://h/x.mkv"),
    ("http://[::1]:32400/a?X-Plex-Token=T", "http://[::1]:32400/a?…"),
    ("/local/file?.mkv", "/local/file?.mkv"),  # a file name, not a URL
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_finds_urls_inside_messages():
    text = "cannot open http://h/a.mkv?api_key=SECRET: 404, see https://x/y?t=Z"
    shown = redact_text(text)
    assert "SECRET" not in shown and "=Z" not in shown
    assert shown.startswith("cannot open http://h/a.mkv?…") and shown.endswith("see https://x/y?…")


@pytest.mark.parametrize("path, wd, want", [
    ("a.mkv", "/home/me", "/home/me/a.mkv"),
    ("../b/a.mkv", "/home/me/x", "/home/me/b/a.mkv"),
    ("/abs/a.mkv", "/home/me", "/abs/a.mkv"),
    ("http://h/a.mkv?x=1", "/home/me", "http://h/a.mkv?x=1"),
    ("ytdl://abc", "/home/me", "ytdl://abc"),
    ("-", "/home/me", "-"),
])
def test_resolve_path(path, wd, want):
    assert resolve_path(path, wd) == want


class Msg:
    def __init__(self, kind, source="home", message="boom", change_type=None):
        self.kind, self.source_id, self.message = kind, source, message
        self.change = type("C", (), {"change_type": change_type})() if change_type else None


# (notifications, messages, how many texts are shown)
OSD_CASES = [
    ("errors", [Msg("completed", change_type="mark_watched")], 0),
    ("all", [Msg("completed", change_type="mark_watched")], 1),
    ("all", [Msg("completed", change_type="progress_update"), Msg("progress"), Msg("superseded")], 0),
    ("errors", [Msg("offline"), Msg("offline"), Msg("offline")], 1),
    ("errors", [Msg("offline"), Msg("online"), Msg("offline")], 3),
    ("errors", [Msg("online")], 0),
    ("errors", [Msg("failed"), Msg("failed", message="other")], 1),
    ("errors", [Msg("failed", source="a"), Msg("failed", source="b")], 2),
    ("errors", [Msg("not_identified"), Msg("not_identified")], 1),
    ("errors", [Msg("auth_required"), Msg("auth_required")], 1),
    ("off", [Msg("failed"), Msg("offline"), Msg("not_identified")], 0),
    ("bogus", [Msg("failed")], 1),  # unknown setting behaves as errors
]


@pytest.mark.parametrize("notifications, messages, shown", OSD_CASES)
def test_osd_policy(notifications, messages, shown):
    policy = OsdPolicy(notifications)
    texts = [t for t in (policy.text_for(m) for m in messages) if t]
    assert len(texts) == shown


def test_osd_once_per_file_but_offline_until_online():
    policy = OsdPolicy("errors")
    assert policy.text_for(Msg("not_identified"))
    assert policy.text_for(Msg("offline"))
    policy.new_file()
    assert policy.text_for(Msg("not_identified"))  # a new file may be unmatched too
    assert policy.text_for(Msg("offline")) is None  # still the same outage


def test_osd_texts_never_show_tokens():
    policy = OsdPolicy("errors")
    text = policy.text_for(Msg("failed", message="GET http://h/Items?api_key=SECRET failed"))
    assert "SECRET" not in text and "http://h/Items?…" in text


def test_missing_libmpv_is_a_clear_error(monkeypatch, capsys):
    from playbacksync.hosts import mpv as mpv_host

    import sys

    monkeypatch.setitem(sys.modules, "mpv", None)  # `import mpv` fails as without libmpv
    assert mpv_host.run_player(["x.mkv"], {}) == mpv_host.EXIT_BAD_OPTIONS
    err = capsys.readouterr().err
    assert "libmpv is not installed" in err and "apt install libmpv2" in err


def test_late_sink_keeps_order_and_passes_subscriptions_on():
    from playbacksync.hosts.mpv import LateSink

    late = LateSink()
    late("e1")
    late("e2")
    got, subscribed, unsubscribed = [], [], []

    def subscribe(callback):
        subscribed.append(callback)
        return lambda: unsubscribed.append(callback)

    undo_early = late.subscribe("cb-early")
    undo_gone = late.subscribe("cb-gone")
    undo_gone()  # unsubscribed before the service existed: never passed on
    assert late.pending == 2 and got == []
    late.attach(got.append, subscribe)
    late("e3")
    undo_late = late.subscribe("cb-late")
    assert got == ["e1", "e2", "e3"] and late.pending == 0
    assert subscribed == ["cb-early", "cb-late"]
    undo_early()
    undo_late()
    assert unsubscribed == ["cb-early", "cb-late"]
