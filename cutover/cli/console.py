"""The terminal's console: rich, with nothing from people or programs able to rewrite the screen."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.segment import Segment

from cutover.core.text import visible


class TerminalConsole(Console):
    """A rich Console that never lets a control character or a direction override of the text reach the terminal.

    Labels, reasons and command outputs come from people and programs: an
    escape sequence in one could rewrite the screen an operator decides on.
    Only the text is rewritten (``cutover.core.text.visible``); rich's own
    styling codes are control segments and pass.
    """

    def _render_buffer(self, buffer: Any) -> str:
        return super()._render_buffer(
            Segment(visible(seg.text), seg.style, seg.control) if not seg.control else seg for seg in buffer)
