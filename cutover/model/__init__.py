"""The boundary models: YAML sources, the inventory, the national platform, the runbook schema, redaction."""
