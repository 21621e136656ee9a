"""The use-cases: runs (the write side); history, programme, report (the read side); approvals, transfer,
notify, anchors."""
