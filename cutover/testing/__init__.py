"""Test doubles shipped with the package, for unit tests of the pure core."""

from cutover.testing.executors import ScriptedExecutor as ScriptedExecutor
from cutover.testing.inventory import tiny_inventory as tiny_inventory
from cutover.testing.journal import InMemoryJournal as InMemoryJournal
