"""Every event kind is handled everywhere it must be: a new kind that misses one fails here, naming it."""

from __future__ import annotations

from cutover.cli import render
from cutover.core import records as r
from cutover.core import state
from cutover.core.views import SHOWN_KINDS
from cutover.web import i18n


def test_every_event_kind_is_folded_or_declared_record_only():
    missing = [kind for kind, cls in r.KINDS.items() if cls not in state._HANDLERS and cls not in state.RECORD_ONLY]
    assert not missing, f"no fold for {missing} (handle them in core.state or add them to RECORD_ONLY)"
    both = [cls.KIND for cls in state.RECORD_ONLY if cls in state._HANDLERS]
    assert not both, both


def test_every_shown_kind_has_its_plain_line_and_its_words_and_no_other_kind_does():
    assert SHOWN_KINDS <= set(r.KINDS), SHOWN_KINDS - set(r.KINDS)
    plain = {cls.KIND for cls in render._PLAIN}
    assert plain == SHOWN_KINDS, {"without a plain line": SHOWN_KINDS - plain, "not shown": plain - SHOWN_KINDS}
    for lang in i18n.LANGUAGES:
        worded = {kind for kind in r.KINDS if i18n.event_word(kind, lang) is not None}
        assert worded == SHOWN_KINDS, (lang, {"without words": SHOWN_KINDS - worded, "not shown": worded - SHOWN_KINDS})

