"""One subpackage per DAG, in chain order: ingest, trusted, models (weekly training), scoring, activation.
Each has `tasks`, one function per task id, taking the run's day and plain values; the same code serves both
targets.

May import: crosschannel.core, and a stage the stages before it in the chain (checked by import-linter).
"""
