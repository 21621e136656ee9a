"""Infrastructure as code for the trusted cloud.

Pure core (plain data, no Pulumi): ``plan`` (the resources a program
registers), ``diff`` (what changes between two plans), ``policy``
(SecNumCloud/HDS rules over a plan). Adapters: ``components`` (the Pulumi
ComponentResources), ``mockrun`` and ``evaluate`` (run the program under
Pulumi's mock runtime, in a fresh process), ``stack`` (Pulumi stack files),
``automation`` (``pulumi preview/up`` for users who have the CLI).
"""
