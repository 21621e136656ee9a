"""Executors: adapters that run runbook actions (local commands, SSH, Ansible)."""
