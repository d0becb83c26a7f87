"""crosschannel: the cross-channel retail personalization bundle's one Python package.

    core/      config, storage and every zone path, the run's partition, SQL jobs and engines, gates, the
               source tables, the DMS and Segment file layouts, SageMaker job configs; imports nothing above it
    stages/    one subpackage per DAG (ingest, trusted, models, scoring, activation); `tasks` in each has one
               function per task id; a stage imports core and the stages before it in the chain
    local/     the local target's stand-ins for AWS (DMS task, SageMaker jobs, outbox delivery)
    wiring/    what DAG files import: defaults, assets, the per-target steps, notifiers, AWS operators
    sim/       the synthetic retailer, bring-your-own-data import and the demo

Layers, top to bottom: sim, wiring, local, stages, core (checked by import-linter: `make lint`).
`notify` and `aws_activation` are thin re-exports of paths Airflow has stored (deadline callbacks, triggers).
"""
