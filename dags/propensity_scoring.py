"""
### propensity_scoring: every customer scored daily by each model's champion, behind a score gate

Runs when `retail_trusted` publishes a partition's features (the `crosschannel.features.customer` asset
carries the partition), or by hand with a Partition Key. Needs a champion per model (run
`propensity_training` first).

1. `plan_scoring` writes the transform input per model (`<root>/ml/<model>/scores/dt=.../input/`: the
   customer id, then the champion's features, CSV without header) and the CreateModel / CreateTransformJob
   configs. The transform's `DataProcessing` (`InputFilter "$[1:]"`, `JoinSource "Input"`, an
   `OutputFilter` keeping the id and the outputs) keeps every score on its customer's line.
2. `create_model` / `score_model`: `SageMakerModelOperator` and `SageMakerTransformOperator` on aws; locally
   the same `include/sagemaker/inference.py` handlers over the same files. Each output line is
   `customer_id,probability,reason_1,reason_2,reason_3` (reasons: the features pushing the score up most).
3. `gate_scores`: every customer of the day's features scored once, probabilities in [0, 1], population
   stability vs the previous day under `models.psi_limit`; then deciles and the model version are added and
   the scores published to `<root>/ml/<model>/scores/dt=.../scores/`. A failure stops the run with each
   failed check; the previous days' scores stay as they were. Results: `<root>/reports/dt=.../gates/`.
4. `publish_scores` emits the `crosschannel.scores` asset with the partition.
"""

from __future__ import annotations

from airflow.sdk import chain, dag, task

from crosschannel.core.partition import partition_day
from crosschannel.wiring import assets, steps
from crosschannel.wiring.defaults import (
    ASSET_SCHEDULED_START,
    DEFAULT_ARGS,
    emit,
    partitioned_on,
    tags,
    test_run,
)
from crosschannel.wiring.notify import deadline_alert

SCORES = assets.scores()


@dag(
    dag_id="propensity_scoring",
    schedule=partitioned_on(assets.features()),
    start_date=ASSET_SCHEDULED_START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    deadline=deadline_alert("propensity_scoring"),
    tags=tags("models"),
    doc_md=__doc__,
)
def propensity_scoring():
    @task
    def plan_scoring(**context) -> list[dict]:
        """Write each model's transform input and its CreateModel / CreateTransformJob configs."""
        from crosschannel.stages.scoring import tasks

        return tasks.plan_scoring(partition_day(context), context["run_id"])

    @task
    def gate_scores(plans: list[dict], **context) -> dict:
        """Check and publish the day's scores with deciles, reasons and model version."""
        from crosschannel.stages.scoring import tasks

        return tasks.gate_scores(partition_day(context), plans)

    @task(outlets=[SCORES])
    def publish_scores(outcome: dict, *, outlet_events, **context) -> dict:
        """Emit the scores asset with the partition and the per-model figures."""
        return emit(outlet_events, SCORES, context, outcome)

    plans = plan_scoring()
    outcome = gate_scores(plans)
    chain(plans, steps.create_model(plans), steps.score_model(plans), outcome, publish_scores(outcome))


dag = propensity_scoring()

if __name__ == "__main__":
    test_run(dag)
