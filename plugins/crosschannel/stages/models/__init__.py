"""The weekly training stage (dags/propensity_training.py): datasets split in time, SageMaker tuning and
training plans, evaluation against the RFM baseline and the champion, the registry and its reports.
`tasks` has one function per task id; `tune_model` and `train_model` are steps of crosschannel.wiring.steps.

May import: crosschannel.core and the earlier stages (ingest, trusted).
"""
