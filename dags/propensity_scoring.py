"""
### propensity_scoring: every customer scored daily by each model's champion, behind a score gate

Runs when `retail_trusted` publishes a partition's features (the `crosschannel.features.customer` asset
carries the partition), or by hand with a Partition Key. Needs a champion per model (run
`propensity_training` first).

1. `plan_scoring` names each model's champion and plans a SQL job, `build_scoring_input`, writing its transform
   input (`<root>/ml/<model>/scores/dt=.../input/`: the customer id, then the champion's features, CSV without
   header). `plan_transforms` writes the CreateModel / CreateTransformJob configs over the committed input. The
   transform's `DataProcessing` (`InputFilter "$[1:]"`, `JoinSource "Input"`, an `OutputFilter` keeping the id and
   the outputs) keeps every score on its customer's line.
2. `create_model` / `score_model`: `SageMakerModelOperator` and `SageMakerTransformOperator` on aws; locally
   the same `include/sagemaker/inference.py` handlers over the same files. Each output line is
   `customer_id,probability,reason_1,reason_2,reason_3` (reasons: the features pushing the score up most).
3. `plan_score_gate` plans two SQL jobs per model over the output, run by `check_scores` (the generic Glue job on
   aws, DuckDB locally): the candidate scores with deciles and model version, and what the gate judges.
   `gate_scores` reads only those checks: every customer of the day's features scored once, probabilities in
   [0, 1], population stability vs the previous day under `models.psi_limit`; then publishes the candidate to
   `<root>/ml/<model>/scores/dt=.../scores/`. A failure stops the run with each failed check; the previous days'
   scores stay as they were. Results: `<root>/reports/dt=.../gates/`.
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
        """Each model's champion and the SQL job writing its transform input from the day's features."""
        from crosschannel.stages.scoring import tasks

        return tasks.plan_scoring(partition_day(context))

    @task
    def plan_transforms(plans: list[dict], **context) -> list[dict]:
        """Each model's CreateModel / CreateTransformJob configs over its committed input."""
        from crosschannel.stages.scoring import tasks

        return tasks.plan_transforms(partition_day(context), plans, context["run_id"])

    @task
    def plan_score_gate(transforms: list[dict], **context) -> list[dict]:
        """The SQL jobs over each transform's output: the candidate scores with deciles and the gate's checks."""
        from crosschannel.stages.scoring import tasks

        return tasks.plan_score_gate(partition_day(context), transforms)

    @task
    def gate_scores(transforms: list[dict], **context) -> dict:
        """Judge each model's checks and publish its candidate scores if they pass."""
        from crosschannel.stages.scoring import tasks

        return tasks.gate_scores(partition_day(context), transforms)

    @task(outlets=[SCORES])
    def publish_scores(outcome: dict, *, outlet_events, **context) -> dict:
        """Emit the scores asset with the partition and the per-model figures."""
        return emit(outlet_events, SCORES, context, outcome)

    plans = plan_scoring()
    transforms = plan_transforms(plans)
    checks = plan_score_gate(transforms)
    outcome = gate_scores(transforms)
    chain(plans, steps.sql_jobs("build_scoring_input", plans.map(lambda plan: plan["job"])), transforms,
          steps.create_model(transforms), steps.score_model(transforms), checks,
          steps.sql_jobs("check_scores", checks), outcome, publish_scores(outcome))


dag = propensity_scoring()

if __name__ == "__main__":
    test_run(dag)
