"""``tokens.store.TokenStore``: the tokens file re-read when it changes (at most once per interval),
its last good set kept while the file cannot be used, and read again at every check until it can."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from translate_svc.transport.tokens.file import TokenDigest, TokenFileError
from translate_svc.transport.tokens.store import TokenStore

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_changed_file_is_read_at_the_next_check_and_its_listeners_told(tmp_path: Path) -> None:
    path, clock = tmp_path / "tokens", Clock()
    path.write_text("old-token * tenant=acme\n")
    store = TokenStore(path, check_interval_s=1.0, clock=clock)
    told: list[int] = []
    store.on_reload.append(lambda: told.append(store.reloads))
    path.write_text("new-token-longer stream tenant=beta\n")
    assert store.lookup("old-token") is not None  # within the interval: not looked at yet
    clock.now = 1.0
    assert store.lookup("old-token") is None
    grant = store.lookup(TokenDigest.of("new-token-longer"))
    assert grant is not None and grant.tenant.name == "beta"
    assert told == [1] and store.tenant("beta") is not None and store.tenant("acme") is None


def test_an_unusable_file_keeps_the_last_good_set_and_is_read_again_until_it_is_usable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "tokens", Clock()
    path.write_text("good-token *\n")
    store = TokenStore(path, check_interval_s=1.0, clock=clock)
    path.write_text("good-token * bogus=1\n")
    with caplog.at_level(logging.ERROR, logger="translate_svc.transport.tokens"):
        for second in (1.0, 2.0, 3.0):
            clock.now = second
            assert store.lookup("good-token") is not None  # the last good set
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(said) == 1 and "line 1: unknown option 'bogus'" in said[0] and "good-token" not in said[0]
    path.write_text("other-token *\n")
    clock.now = 4.0
    assert store.lookup("good-token") is None and store.lookup("other-token") is not None
    assert store.reloads == 1


def test_a_bad_file_fails_the_start_naming_the_line_not_the_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# comment\nsecret-token-9 fly\n")
    with pytest.raises(TokenFileError, match=r"line 2: unknown permission 'fly'") as e:
        TokenStore(path)
    assert "secret-token-9" not in str(e.value)
