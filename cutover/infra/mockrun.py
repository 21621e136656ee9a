"""Evaluate a Pulumi program under Pulumi's mock runtime and print what it registers.

Run as a script, in a fresh interpreter, by ``cutover.infra.evaluate``::

    python mockrun.py --program DIR --project NAME --stack NAME --config JSON --out FILE [--import-root DIR]

Why a separate process and a standalone script:

- Pulumi's mock runtime keeps global state (settings, the root stack, pending
  RPCs); a second evaluation in the same interpreter would see the first one's
  resources. A process per evaluation is always fresh.
- ``infra diff git:REF`` evaluates the program *as it was at REF*, with that
  revision's ``cutover`` package (inventory model, components). So this file
  imports nothing from ``cutover``: it puts ``--import-root`` first on
  ``sys.path`` and lets the program import what it finds there.

Output (``--out FILE``, one JSON document; not stdout, which the program may print to): ``{"resources": [...]}`` with the raw
registrations (URNs, not yet names), or ``{"error": {...}}`` when the program
raised; an error object carries ``problems`` when the exception had them (the
inventory's ``ValidationError``), so the caller can show file and line.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

SECRET_PLACEHOLDER = "[secret]"
UNKNOWN_PLACEHOLDER = "[unknown]"


def _run_program(main: Path) -> None:
    runpy.run_path(str(main), run_name="__main__")


def plain(value: Any) -> Any:
    """Engine wire values -> plain JSON: secrets masked, unknowns named, whole floats as ints."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return SECRET_PLACEHOLDER  # never let a secret reach a plan file
        if sig == _RESOURCE_SIG:
            return {"resource": value.get("urn")}
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Struct numbers are doubles; ports and sizes are ints
    if value == _UNKNOWN:
        return UNKNOWN_PLACEHOLDER
    return value


def resource_options(request: Any) -> dict[str, Any]:
    """The resource options of a registration (the engine's request), as a plan records them."""
    return plan_options(protect=request.protect, retain_on_delete=request.retainOnDelete,
                        delete_before_replace=request.deleteBeforeReplace, ignore_changes=request.ignoreChanges)


def plan_options(*, protect: bool | None, delete_before_replace: bool | None, ignore_changes: Iterable[str],
                 retain_on_delete: bool | None = False) -> dict[str, Any]:
    """The resource options a reviewer must see, by their Pulumi names (only those set, so plans stay small and
    stable). The policy pack (``cutover.infra.crossguard``) records them this way too."""
    options: dict[str, Any] = {}
    if protect:
        options["protect"] = True
    if retain_on_delete:
        options["retainOnDelete"] = True
    if delete_before_replace:
        options["deleteBeforeReplace"] = True
    if ignore_changes:
        options["ignoreChanges"] = sorted(ignore_changes)
    return options


def _mock_state(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs a real provider would compute, made up deterministically from the inputs."""
    state = dict(inputs)
    if type_ == "openstack:networking/port:Port":
        fixed = [ip.get("ipAddress") for ip in inputs.get("fixedIps") or [] if isinstance(ip, dict)]
        state["allFixedIps"] = [ip for ip in fixed if ip]
    if type_ == "openstack:compute/instance:Instance":
        state["accessIpV4"] = ""
    return state


# The customer stack reads what the provider owns by name (cutover.infra.components.provider):
# a lookup of NAME answers "<kind>-NAME.id", the logical name the provider-side program
# gives that resource, so a check of both plans follows the reference across.
LOOKUP_KINDS = {"getAuthScope": "project", "getFlavor": "flavor", "getNetwork": "network", "getSubnet": "subnet",
                "getProject": "project", "getPort": "port"}


def lookup_result(token: str, args: dict[str, Any]) -> dict[str, Any]:
    """What a data source (``get_*``) returns under mocks: the arguments, and a predictable id."""
    function = token.rsplit(":", 1)[-1]
    reference = f"{LOOKUP_KINDS.get(function, function)}-{args.get('name', '')}.id"
    result = {**args, "id": reference}
    if function == "getAuthScope":
        result |= {"projectId": reference, "projectName": args.get("name", "")}
    return result


def _build_runtime(project: str, stack: str, config: dict[str, str]) -> Any:
    import pulumi
    from google.protobuf import json_format
    from pulumi.runtime import mocks as pulumi_mocks

    class Mocks(pulumi.runtime.Mocks):
        # A resource's id is "<logical name>.id": references between resources
        # stay readable in the plan ("networkId": "national-admin-net.id").
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            return f"{args.name}.id", _mock_state(args.typ, args.name, args.inputs)

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
            return lookup_result(args.token, dict(args.args)), []

    class RecordingMonitor(pulumi_mocks.MockMonitor):
        """The SDK's mock monitor, plus a record of parent, dependencies and provider."""

        def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
            super().__init__(mocks)
            self.records: list[dict[str, Any]] = []

        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                self.records.append({
                    "type": request.type,
                    "name": request.name,
                    "urn": response.urn,
                    "custom": bool(request.custom),
                    "parent": request.parent,
                    "dependencies": list(request.dependencies),
                    "provider": request.provider,
                    "inputs": plain(json_format.MessageToDict(request.object)),
                    "options": resource_options(request),
                })
            return response

    monitor = RecordingMonitor(Mocks())
    pulumi.runtime.set_all_config(config)
    pulumi.runtime.set_mocks(Mocks(), project=project, stack=stack, preview=False, monitor=monitor)
    return monitor


def evaluate(program: Path, project: str, stack: str, config: dict[str, str]) -> list[dict[str, Any]]:
    """Run ``program/__main__.py`` once under mocks; the raw registrations, in order."""
    monitor = _build_runtime(project, stack, config)
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    main = program / "__main__.py"
    _sync_await(run_pulumi_func(lambda: _run_program(main)))
    return monitor.records


def _error_document(exc: BaseException) -> dict[str, Any]:
    error: dict[str, Any] = {
        "kind": type(exc).__name__,
        "message": str(getattr(exc, "message", exc)),
        "hint": getattr(exc, "hint", None),
        "traceback": traceback.format_exc(),
    }
    problems = getattr(exc, "problems", None)
    if problems:
        error["problems"] = [
            {k: getattr(p, k, None) for k in ("file", "message", "line", "field", "hint")} for p in problems
        ]
    return {"error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--program", type=Path, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--config", default="{}", help="Pulumi config as a JSON object of 'ns:key' -> string")
    parser.add_argument("--import-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    # The SDK hands every registration to a thread pool and waits for it on the
    # event loop; with CPython's default 5 ms GIL switch interval most of the
    # wall time is spent waiting for hand-offs. A short interval halves it.
    sys.setswitchinterval(1e-4)
    if args.import_root is not None:
        sys.path.insert(0, str(args.import_root))
    sys.path.insert(0, str(args.program))  # as the Pulumi language host does
    try:
        document: dict[str, Any] = {"resources": evaluate(args.program, args.project, args.stack,
                                                          json.loads(args.config))}
    except BaseException as exc:  # noqa: BLE001 reported to the parent process as data
        document = _error_document(exc)
    args.out.write_text(json.dumps(document), encoding="utf-8")
    return 0 if "resources" in document else 1


if __name__ == "__main__":
    sys.exit(main())
