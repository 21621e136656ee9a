"""The pure core: runbook planning, the run state machine, journal folding.

Nothing here imports paramiko, ansible_runner, pulumi, click or rich. Adapters
(``cutover.executors``, ``cutover.journal``, ``cutover.lab``, the CLI) translate
to and from these types.
"""
