"""The crisis room: ``cutover serve``'s read-only web board over the journal.

``app`` holds the Starlette application and its routes, ``board`` what a run's
board shows (plain data), ``security`` what keeps it read-only and private,
``i18n`` its French and English words. Nothing here writes to the journal.
"""
