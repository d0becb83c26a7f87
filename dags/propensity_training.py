"""
### propensity_training: churn and repurchase models, tuned, trained, evaluated and promoted (weekly)

Runs on Mondays at 04:00 UTC for Sunday's partition key, or by hand with a Partition Key (the trusted
partition must be published). For every model of `models.specs` in the configuration:

1. `plan_snapshots` / `snapshot_features`: `include/sql/trusted/customer_features.sql` as of each past
   as-of day the temporal split needs, over the partition's trusted state, with the labels whose window is
   complete (SQL jobs: DuckDB locally, the generic Glue job on aws) into `<root>/ml/snapshots/dt=.../`.
2. `plan_datasets` / `build_dataset` / `check_datasets`: train / validation / test (test = the latest as-of day
   whose label window is complete; validation and training days each a label window earlier, so no label window
   overlaps the next split; a shorter order history falls back to days `models.as_of_step_days` apart, said in
   the card) as SageMaker CSV (label first, no header) with a manifest, and a summary of the splits, each a SQL
   job (`include/sql/models/`) into `<root>/ml/<model>/datasets/dt=.../`; then the summaries are judged.
3. `plan_tuning` / `tune_model`: a hyperparameter tuning job over `models.ranges` with `models.max_trials`
   trials maximizing validation AUC: `SageMakerTuningOperator` (Bayesian) on aws; locally the same
   `include/sagemaker/train.py` in the SageMaker layout, seeded random search with the same budget.
4. `plan_training` / `train_model`: the final training job with the best hyperparameters
   (`SageMakerTrainingOperator` on aws, the same script locally).
5. `evaluate_models`: AUC, PR-AUC, log loss, top-decile lift and capture, calibration on the test rows,
   against the RFM and BG/NBD baselines and the current champion on the same rows. The challenger is
   registered as a new, immutable version (`<root>/ml/<model>/registry/vNNNN/`: model, card with metrics,
   HTML report; on aws also a model package of the SageMaker model package group) and promoted only if it
   beats the strongest baseline and the champion by `models.promotion_margin`; when nothing trained does,
   the strongest baseline is the champion (`bNNNN`, scored through the same batch transform). The report is
   also in `<root>/reports/dt=.../models/<model>.html`; its path
   is in the task log. Job names carry a hash of the Airflow run, so a re-run starts fresh SageMaker jobs.
6. `publish_models` emits the `crosschannel.models` asset with the outcome.
7. Recommenders (`recommendations.enabled`): `plan_solutions` / `train_solution` / `register_solutions`: a
   solution version per recipe (aws-user-personalization-v2, aws-similar-items: Personalize's CreateSolutionVersion
   on aws, waited for in the triggerer; the local recipe locally), its metrics (GetSolutionMetrics) in a card under
   `<root>/ml/<recipe>/registry/s<day>-<hash>/`, promoted unless worse than the champion or older than it; a
   backfill trains none (crosschannel.stages.recommendations).

Needs on aws: `aws.sagemaker.role_arn` (reading the ml zone, writing model artifacts) and the region's
XGBoost framework image (`aws.sagemaker.image_uri`).
"""

from __future__ import annotations

from airflow.sdk import chain, dag, task

from crosschannel.core.partition import is_backfill, partition_day
from crosschannel.wiring import assets, steps
from crosschannel.wiring.defaults import (
    DEFAULT_ARGS,
    SCHEDULE_START,
    WEEKLY_MONDAY_UTC,
    emit,
    tags,
    test_run,
)
from crosschannel.wiring.notify import deadline_alert

MODELS = assets.models()


@dag(
    dag_id="propensity_training",
    schedule=WEEKLY_MONDAY_UTC,
    start_date=SCHEDULE_START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    deadline=deadline_alert("propensity_training"),
    tags=tags("models"),
    doc_md=__doc__,
)
def propensity_training():
    @task
    def plan_snapshots(**context) -> list[dict]:
        """One features job per as-of day of the temporal split, over the partition's trusted state."""
        from crosschannel.stages.models import tasks

        return tasks.plan_snapshots(partition_day(context))

    @task
    def plan_datasets(**context) -> list[dict]:
        """Per model, SQL jobs writing the train / validation / test channels and a summary of them."""
        from crosschannel.stages.models import tasks

        return tasks.plan_datasets(partition_day(context))

    @task
    def check_datasets(**context) -> dict:
        """Each model's splits judged by their summaries: both classes, labels 0 or 1, finite features."""
        from crosschannel.stages.models import tasks

        return tasks.check_datasets(partition_day(context))

    @task
    def plan_tuning(**context) -> list[dict]:
        """CreateHyperParameterTuningJob configs, one per model."""
        from crosschannel.stages.models import tasks

        return tasks.plan_tuning(partition_day(context), context["run_id"])

    @task
    def plan_training(tuning: list[dict], **context) -> list[dict]:
        """CreateTrainingJob configs with each model's best tuned hyperparameters."""
        from crosschannel.stages.models import tasks

        return tasks.plan_training(partition_day(context), tuning, context["run_id"])

    @task
    def evaluate_models(trained, **context) -> dict:
        """Evaluate every challenger against the baseline and the champion; register and maybe promote it."""
        from crosschannel.stages.models import tasks

        return tasks.evaluate_models(partition_day(context), trained)

    @task
    def plan_solutions(**context) -> list[dict]:
        """One recommender training plan per recipe: CreateSolution, CreateFilter, CreateSolutionVersion."""
        from crosschannel.stages.recommendations import tasks

        return tasks.plan_solutions(partition_day(context), context["run_id"], is_backfill(context))

    @task
    def register_solutions(trained, **context) -> dict:
        """Register each solution version with its metrics; promote it unless it is worse than the champion."""
        from crosschannel.stages.recommendations import tasks

        return tasks.register_solutions(partition_day(context), trained)

    @task(outlets=[MODELS])
    def publish_models(outcome: dict, *, outlet_events, **context) -> dict:
        """Emit the models asset with the partition and each model's version, AUCs and decision."""
        return emit(outlet_events, MODELS, context, {"models": outcome})

    snapshots, datasets, tuning = plan_snapshots(), plan_datasets(), plan_tuning()
    tuned, training = steps.tune_model(tuning), plan_training(tuning)
    trained = steps.train_model(training)
    outcome = evaluate_models(trained)
    chain(snapshots, steps.sql_jobs("snapshot_features", snapshots), datasets,
          steps.sql_jobs("build_dataset", datasets), check_datasets(), tuning, tuned, training, trained, outcome,
          publish_models(outcome))
    register_solutions(steps.train_solution(plan_solutions()))


dag = propensity_training()

if __name__ == "__main__":
    test_run(dag)
