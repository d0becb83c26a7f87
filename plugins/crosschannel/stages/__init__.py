"""One subpackage per DAG, in chain order: ingest, trusted, models (weekly training), scoring, activation.
Each has `tasks`, one function per task id, taking the run's day and the task's inputs (no Airflow context);
the same code serves both targets.

May import: crosschannel.core; a stage also the stages before it in the chain (checked by import-linter).
"""
