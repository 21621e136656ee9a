"""A scripted executor for unit tests of the engine: no processes, no network.

    executor = ScriptedExecutor()
    executor.script("backup-mode", Phase.VERIFY, "samu-30", Outcome.FAILED)
    ... drive the engine ...
    assert executor.calls_for("backup-mode", Phase.ACTION) == ["samu-01", ...]

Outcomes are consumed in order per (step, phase, target); when none is
scripted the call succeeds. ``effects`` counts successful main actions per
(step, target), the stand-in for a real side effect (exactly-once checks).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cutover.core.actions import ActionRequest, ActionResult, Outcome, Phase, Target
from cutover.core.steps import Action, ActionStep


@dataclass
class Call:
    step: str
    phase: Phase
    targets: tuple[Target, ...]


@dataclass
class ScriptedExecutor:
    batched: bool = False
    calls: list[Call] = field(default_factory=list)
    effects: Counter[tuple[str, Target]] = field(default_factory=Counter)
    # called before each result is returned: lets a test stop the "controller" mid-step
    hook: Callable[[ActionRequest, Target], None] | None = None
    _script: dict[tuple[str, Phase, Target], list[Outcome]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, step: str, phase: Phase, target: Target, *outcomes: Outcome) -> ScriptedExecutor:
        self._script.setdefault((step, phase, target), []).extend(outcomes)
        return self

    def ready(self, uses: Sequence[tuple[ActionStep, Action]]) -> None:
        return None

    def close(self) -> None:
        return None

    def run(self, request: ActionRequest) -> Mapping[Target, ActionResult]:
        with self._lock:
            self.calls.append(Call(request.step_id, request.phase, request.targets))
        return {target: self._one(request, target) for target in request.targets}

    def _one(self, request: ActionRequest, target: Target) -> ActionResult:
        with self._lock:
            queue = self._script.get((request.step_id, request.phase, target))
            outcome = queue.pop(0) if queue else Outcome.OK
            if outcome.started and request.phase is Phase.ACTION:
                self.effects[(request.step_id, target)] += 1
        if self.hook is not None:
            self.hook(request, target)
        detail = "" if outcome is Outcome.OK else f"scripted {outcome.value}"
        return ActionResult(outcome, detail=detail, exit_status=0 if outcome is Outcome.OK else 1)

    def calls_for(self, step: str, phase: Phase) -> list[Target]:
        return [t for call in self.calls if call.step == step and call.phase is phase for t in call.targets]
