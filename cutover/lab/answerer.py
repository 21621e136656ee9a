"""The lab's answering SIP user agents: each platform and each SAMU's backup position.

``python -m cutover.lab.answerer --lab-dir LAB --samus 01,13`` binds one UDP
socket on loopback per answering point: ``legacy``, ``cloud``, and
``local:<code>`` for each SAMU's backup position, then writes their ports to
``<lab>/sip/answerers.json`` (the router's ``dest`` table is built from it).

Why a small asyncio agent and not SIPp in server mode: an answered call must be
*recorded* at its end in the database of whoever answered, through
``samulab.record_call``, with the SAMU, the caller and the time it was
answered; SIPp's server scenarios could only do that by spawning a process per
call (``<exec>``), which this 2-core machine cannot afford at the lab's rates.
No SIP library is needed for what a UAS does here (200 to INVITE, retransmitted
until ACK; 200 to BYE; 481 otherwise), and the lab's tools stay stdlib only.

The agent holds no lock for the life of a call. At the INVITE it asks the
platform whether it takes this SAMU's calls now (a frozen partition or a down
platform answers 503, which the caller counts as failed) and writes the call
in the ledger as in progress; at the BYE it records the call (one short
transaction) and only then answers 200, so a call the caller counts as
successful has its record written, or its loss written in the ledger. A call
whose partition froze while it was talking loses its record, as it would for
real: that is why a night drains before it freezes. A retransmitted INVITE or
BYE gets the same answer again and is never recorded twice.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutover.lab.tools import samulab, sipcall
from cutover.lab.tools.sipcall import SipMessage

ANSWERERS_FILE = ("sip", "answerers.json")
T2 = 4.0
TIMER_H_S = 32.0  # stop retransmitting a 200 that no ACK acknowledges; forget an ended call after this
# The lab's session timer: a call still up this long after its answer lost its BYE (the router died
# under it); it is ended and recorded, as a session timer would end it, so a drain never waits forever.
MAX_CALL_S = 30.0
SWEEP_S = 5.0

Address = tuple[str, int]


def answerers_file(lab_dir: Path) -> Path:
    return Path(lab_dir).joinpath(*ANSWERERS_FILE)


@dataclass
class Call:
    who: str  # legacy, cloud or local
    code: str
    caller: str
    source: str
    answered_at: str
    started: float
    peer: Address
    ok: bytes  # our 200 to the INVITE, resent to a retransmitted INVITE
    acked: bool = False
    ending: bool = False
    bye_reply: bytes = b""
    ended: float = 0.0
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


class Answerer:
    """Every answering point of one lab, in one event loop; records are written by one worker thread."""

    def __init__(self, lab_dir: Path, seed: int | None = None) -> None:
        self.lab_dir = Path(lab_dir)
        self.calls: dict[str, Call] = {}
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
        self.rng = random.Random(seed)
        self._lab: samulab.LabData | None = None  # used by the worker thread only
        self.transports: dict[str, asyncio.DatagramTransport] = {}
        # Calls whose record a platform did not take: if its database was down, their in-progress marks are
        # still there; cleared at the sweeps once it is back (used by the worker thread only)
        self.unended: dict[str, str] = {}

    # the worker thread's side: the databases

    def _data(self) -> samulab.LabData:
        if self._lab is None:
            self._lab = samulab.LabData(self.lab_dir)
        return self._lab

    def _take(self, call_id: str, call: Call) -> str | None:
        """At the INVITE: may this platform take the call? Writes it in the ledger either way."""
        lab = self._data()
        refusal = None if call.who == samulab.LOCAL else samulab.refusal(lab, call.who, call.code)
        if refusal is None and call.who != samulab.LOCAL:  # in progress on the platform: a drain waits for it
            samulab.call_started(lab.platform(call.who), call.code, call_id)
        samulab.ledger_answered(lab.ledger(), call_id, call.code, call.answered_at,
                                None if refusal else call.who, call.source, refusal)
        return refusal

    def _record(self, call_id: str, call: Call) -> None:
        """At the end of the call: its record where it was answered, then its end in the ledger."""
        lab = self._data()
        record = dataclasses.replace(
            samulab.new_record(call.code, call.who, caller=call.caller, placed_at=call.answered_at, rng=self.rng),
            call_id=call_id, answered_at=call.answered_at)
        try:
            lost = samulab.record_call(lab, record)
        except Exception as exc:  # a down database: the record is lost, the ledger says why
            lost = f"{call.who} could not record: {type(exc).__name__}: {exc}"
        if lost is not None and call.who != samulab.LOCAL:
            self.unended[call_id] = call.who
        samulab.ledger_ended(lab.ledger(), call_id, lost)

    def _clear_unended(self) -> None:
        """Clear the in-progress marks of calls that ended while their platform's database was down."""
        lab = self._data()
        for call_id, who in list(self.unended.items()):
            try:
                samulab.call_ended(lab.platform(who), call_id)
            except Exception:  # still down: try again at the next sweep
                continue
            del self.unended[call_id]

    # the event loop's side: SIP

    def received(self, who: str, data: bytes, peer: Address) -> None:
        try:
            message = sipcall.parse(data)
            if not message.is_request:
                return  # we send no request: nothing to match a response to
            handler = {"INVITE": self._invite, "ACK": self._ack, "BYE": self._bye}.get(message.method, self._other)
            handler(who, message, peer)
        except (ValueError, IndexError, KeyError) as exc:
            print(f"{time.strftime('%H:%M:%S')} {who}: unreadable message from {peer}: {exc}", file=sys.stderr)

    def _send(self, who: str, payload: bytes, peer: Address) -> None:
        transport = self.transports.get(who)
        if transport is not None and not transport.is_closing():
            transport.sendto(payload, peer)

    def _invite(self, point: str, message: SipMessage, peer: Address) -> None:
        known = self.calls.get(message.call_id)
        if known is not None:  # a retransmission: the same answer
            if known.ok:
                self._send(point, known.ok, peer)
            return
        code = sipcall.number_of(message.uri) or sipcall.number_of(message.get("to"))
        who, _, own = point.partition(":")
        if code is None or (own and code != own):
            self._send(point, sipcall.response(message, 404, "Not Found").to_bytes(), peer)
            return
        caller = sipcall.uri_in(message.get("from")).split("@")[0].removeprefix("sip:")
        call = Call(who=who, code=code, caller=caller, source="test-call" if caller == "test-call" else "sipp",
                    answered_at=samulab.now(), started=time.monotonic(), peer=peer, ok=b"")
        self.calls[message.call_id] = call
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.worker, self._take, message.call_id, call)
        future.add_done_callback(lambda f: self._answer(point, message, call, f))

    def _answer(self, point: str, message: SipMessage, call: Call, taken: asyncio.Future[str | None]) -> None:
        failure = taken.exception()
        refusal = f"cannot reach its database: {failure}" if failure is not None else taken.result()
        host, port = self.transports[point].get_extra_info("sockname")[:2]
        local = f"{host}:{port:d}"
        if refusal:
            reply = sipcall.response(message, 503, "Service Unavailable", to_tag=uuid.uuid4().hex[:10],
                                     extra=[("Reason", f'Q.850;cause=41;text="{refusal}"')])
            call.ok, call.ending, call.ended = reply.to_bytes(), True, time.monotonic()
            self._send(point, call.ok, call.peer)
            return
        reply = sipcall.response(message, 200, "OK", to_tag=uuid.uuid4().hex[:10],
                                 extra=[("Contact", f"<sip:{point}@{local}>"), ("X-Answered-By", call.who)])
        call.ok = reply.to_bytes()
        self._send(point, call.ok, call.peer)
        self._retransmit(point, message.call_id, call, sipcall.T1)

    def _retransmit(self, point: str, call_id: str, call: Call, interval: float) -> None:
        """Resend the 200 until it is acknowledged (RFC 3261 13.3.1.4): a lost 200 must not lose the call."""
        if call.acked or call.ending or time.monotonic() - call.started > TIMER_H_S:
            return
        loop = asyncio.get_running_loop()

        def again() -> None:
            if not (call.acked or call.ending):
                self._send(point, call.ok, call.peer)
                self._retransmit(point, call_id, call, min(interval * 2, T2))

        call.timers.append(loop.call_later(interval, again))

    def _ack(self, point: str, message: SipMessage, peer: Address) -> None:
        call = self.calls.get(message.call_id)
        if call is not None:
            call.acked = True

    def _bye(self, point: str, message: SipMessage, peer: Address) -> None:
        call = self.calls.get(message.call_id)
        if call is None or not call.ok or call.ok.startswith(b"SIP/2.0 503"):
            self._send(point, sipcall.response(message, 481, "Call/Transaction Does Not Exist").to_bytes(), peer)
            return
        call.acked = True  # a BYE means the caller had our 200
        if call.bye_reply:
            self._send(point, call.bye_reply, peer)
            return
        if call.ending:
            return  # recording: the router will retransmit the BYE, and get the answer then
        call.ending = True
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.worker, self._record, message.call_id, call)

        def done(_: Any) -> None:
            call.bye_reply = sipcall.response(message, 200, "OK").to_bytes()
            call.ended = time.monotonic()
            self._send(point, call.bye_reply, peer)

        future.add_done_callback(lambda f: loop.call_soon_threadsafe(done, f))

    def _other(self, point: str, message: SipMessage, peer: Address) -> None:
        if message.method in ("OPTIONS", "CANCEL"):
            self._send(point, sipcall.response(message, 200, "OK").to_bytes(), peer)
        else:
            self._send(point, sipcall.response(message, 405, "Method Not Allowed").to_bytes(), peer)

    def sweep(self) -> None:
        """Forget calls ended long ago; end (and record) calls no one hung up."""
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        if self.unended:
            loop.run_in_executor(self.worker, self._clear_unended)
        for call_id, call in list(self.calls.items()):
            if call.ended and now - call.ended > TIMER_H_S:
                del self.calls[call_id]
            elif not call.ending and call.ok and now - call.started > MAX_CALL_S:
                call.ending = True
                future = loop.run_in_executor(self.worker, self._record, call_id, call)
                future.add_done_callback(functools.partial(_mark_ended, call))

    def close(self) -> None:
        self.worker.shutdown(wait=True)
        if self._lab is not None:
            self._lab.close()


def _mark_ended(call: Call, _: object) -> None:
    call.ended = time.monotonic()


class _Point(asyncio.DatagramProtocol):
    def __init__(self, answerer: Answerer, who: str) -> None:
        self.answerer, self.who = answerer, who

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answerer.received(self.who, data, (addr[0], addr[1]))


async def serve(lab_dir: Path, codes: Sequence[str], stop: asyncio.Event) -> None:
    answerer = Answerer(lab_dir)
    loop = asyncio.get_running_loop()
    points = [*samulab.PLATFORMS, *(f"local:{code}" for code in codes)]
    try:
        for point in points:
            transport, _ = await loop.create_datagram_endpoint(functools.partial(_Point, answerer, point),
                                                               local_addr=("127.0.0.1", 0))
            answerer.transports[point] = transport
        ports = {p: t.get_extra_info("sockname")[1] for p, t in answerer.transports.items()}
        _write_ports(lab_dir, ports)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=SWEEP_S)
            except TimeoutError:
                answerer.sweep()
    finally:
        for transport in answerer.transports.values():
            transport.close()
        answerer.close()


def _write_ports(lab_dir: Path, ports: dict[str, int]) -> None:
    path = answerers_file(lab_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps({"pid": os.getpid(), "ports": ports}, indent=2))
    os.replace(temp, path)


def read_ports(lab_dir: Path) -> dict[str, int] | None:
    """The answering points' ports, once the agent has bound them (None before)."""
    try:
        data = json.loads(answerers_file(lab_dir).read_text())
    except (OSError, ValueError):
        return None
    return {str(k): int(v) for k, v in data["ports"].items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cutover.lab.answerer", description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--samus", required=True, help="comma-separated SAMU codes (one backup position each)")
    args = parser.parse_args(argv)
    codes = [c for c in args.samus.split(",") if c]

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await serve(args.lab_dir, codes, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
