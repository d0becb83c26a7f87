"""Amazon Personalize training and batch inference on the aws target (crosschannel.wiring.aws): the solution
operator (solution and filter created unless they exist, the version trained, its metrics read) and the batch
inference operator, against botocore's Stubber. Every request the operators send is checked strictly against the
Personalize model (crosschannel.core.awsapi, as AWS checks it) before the Stubber compares it with the expected one;
the canned answers are checked against the model by the Stubber itself."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from airflow.sdk.module_loading import import_string
from botocore.stub import Stubber

from crosschannel.core import awsapi
from crosschannel.core.config import get_config
from crosschannel.stages.activation import outbox
from crosschannel.wiring.aws import operators
from crosschannel.wiring.aws.hooks import JOBS, ActivationJobFailed, PersonalizeHook, wait
from crosschannel.wiring.aws.operators import PersonalizeBatchInferenceOperator, PersonalizeSolutionOperator
from crosschannel.wiring.aws.triggers import ActivationJobTrigger
from tests.conftest import ACCOUNT, AWS_ENV, configure

DAY = dt.date(2026, 11, 1)
GROUP = AWS_ENV["CROSSCHANNEL__ACTIVATION__PERSONALIZE__DATASET_GROUP_ARN"]
ROLE = AWS_ENV["CROSSCHANNEL__ACTIVATION__PERSONALIZE__ROLE_ARN"]
PREFIX = f"arn:aws:personalize:us-east-1:{ACCOUNT}"
USER_RECIPE, SIMILAR_RECIPE = "aws-user-personalization-v2", "aws-similar-items"
SOLUTION = f"{PREFIX}:solution/crosschannel-user-personalization"
SIMILAR_SOLUTION = f"{PREFIX}:solution/crosschannel-similar-items"
VERSION = f"{SOLUTION}/0a1b2c3d"
VERSION_NAME = "crosschannel-user-20261101-abc123"
FILTER = f"{PREFIX}:filter/crosschannel-in-stock"
EXPRESSION = "INCLUDE ItemID WHERE Items.STOCK_LOCATIONS IN ($LOCATIONS)"
JOB_NAME = "crosschannel-user-20261102-abc123"
JOB = f"{PREFIX}:batch-inference-job/{JOB_NAME}"
FOLDER = "s3://lake/data/activation/recommendations/dt=2026-11-02/attempt=20261102T070000000000Z-test/users"
METRICS = {"coverage": 0.41, "mean_reciprocal_rank_at_25": 0.12, "normalized_discounted_cumulative_gain_at_10": 0.2,
           "precision_at_10": 0.03}
AT = dt.datetime(2026, 11, 2, 3, 0)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The aws configuration of conftest.AWS_ENV (dataset group and role included), polling without sleeping."""
    yield configure(monkeypatch, tmp_path, **AWS_ENV, CROSSCHANNEL__ACTIVATION__POLL_INTERVAL_SECONDS="0")
    get_config.cache_clear()


@pytest.fixture
def personalize(stub):
    """personalize(hook_or_operator): its hook's client behind an active Stubber, every request it sends checked
    strictly against the service model first (`sent` lists them)."""
    sent: list[tuple[str, dict]] = []

    def check(params, model, **kwargs):
        awsapi.check("personalize", model.name, params, strict=True)
        sent.append((model.name, params))

    def make(target):
        hook = target.hook if hasattr(target, "hook") and not isinstance(target, PersonalizeHook) else target
        stubber = stub(hook)
        hook.conn.meta.events.register("before-parameter-build.personalize.*", check)
        stubber.sent = sent
        return stubber

    return make


def _request(operation: str, params: dict) -> dict:
    return outbox.validate("personalize", operation, params)


def solution_plan(recipe: str = USER_RECIPE, *, with_filter: bool = True, version_name: str = VERSION_NAME) -> dict:
    """A plan of crosschannel.stages.recommendations.solutions.plan (the interface: CreateSolution, CreateFilter for
    the user recipe, CreateSolutionVersion)."""
    short, solution = ("user-personalization", SOLUTION) if recipe == USER_RECIPE else ("similar-items",
                                                                                       SIMILAR_SOLUTION)
    requests = [_request("CreateSolution", {"name": f"crosschannel-{short}", "datasetGroupArn": GROUP,
                                            "recipeArn": f"arn:aws:personalize:::recipe/{recipe}",
                                            "performAutoTraining": False})]
    if with_filter:
        requests.append(_request("CreateFilter", {"name": "crosschannel-in-stock", "datasetGroupArn": GROUP,
                                                  "filterExpression": EXPRESSION}))
    requests.append(_request("CreateSolutionVersion", {"solutionArn": solution, "trainingMode": "FULL",
                                                       "name": version_name}))
    return {"partition": DAY.isoformat(), "recipe": recipe, "requests": requests}


def batch_plan(*, job_name: str = JOB_NAME, with_filter: bool = True) -> dict:
    """A plan of crosschannel.stages.activation.recommended.plan (one CreateBatchInferenceJob)."""
    params = {"jobName": job_name, "solutionVersionArn": VERSION, "numResults": 3,
              "jobInput": {"s3DataSource": {"path": f"{FOLDER}/users.json"}},
              "jobOutput": {"s3DataDestination": {"path": f"{FOLDER}/output/"}}, "roleArn": ROLE}
    if with_filter:
        params["filterArn"] = FILTER
    return {"partition": "2026-11-02", "name": "users", "recipe": USER_RECIPE, "lines": 2,
            "input": f"{FOLDER}/users.json", "output": f"{FOLDER}/output", "solution_version": "v0001",
            "requests": [_request("CreateBatchInferenceJob", params)]}


# ---- the answers, as Personalize gives them

def _already_exists(stubber: Stubber, method: str, params: dict) -> None:
    stubber.add_client_error(method, service_error_code="ResourceAlreadyExistsException",
                             service_message="The resource already exists", http_status_code=400,
                             expected_params=params)


def _describe_solution(stubber: Stubber, status: str, arn: str = SOLUTION, recipe: str = USER_RECIPE) -> None:
    stubber.add_response("describe_solution", {"solution": {
        "name": arn.rsplit("/", 1)[1], "solutionArn": arn, "recipeArn": f"arn:aws:personalize:::recipe/{recipe}",
        "datasetGroupArn": GROUP, "performAutoTraining": False, "status": status, "creationDateTime": AT}},
        {"solutionArn": arn})


def _describe_filter(stubber: Stubber, status: str, **fields) -> None:
    stubber.add_response("describe_filter", {"filter": {
        "name": "crosschannel-in-stock", "filterArn": FILTER, "datasetGroupArn": GROUP,
        "filterExpression": EXPRESSION, "status": status, "creationDateTime": AT, **fields}}, {"filterArn": FILTER})


def _describe_version(stubber: Stubber, status: str, arn: str = VERSION, name: str = VERSION_NAME, **fields) -> None:
    stubber.add_response("describe_solution_version", {"solutionVersion": {
        "name": name, "solutionVersionArn": arn, "solutionArn": arn.rsplit("/", 1)[0], "trainingMode": "FULL",
        "trainingType": "MANUAL", "status": status, "creationDateTime": AT, **fields}}, {"solutionVersionArn": arn})


def _metrics(stubber: Stubber, arn: str = VERSION) -> None:
    stubber.add_response("get_solution_metrics", {"solutionVersionArn": arn, "metrics": METRICS},
                         {"solutionVersionArn": arn})


def _describe_job(stubber: Stubber, status: str, arn: str = JOB, **fields) -> None:
    stubber.add_response("describe_batch_inference_job", {"batchInferenceJob": {
        "jobName": arn.rsplit("/", 1)[1], "batchInferenceJobArn": arn, "solutionVersionArn": VERSION,
        "numResults": 3, "roleArn": ROLE, "status": status, "creationDateTime": AT,
        "jobInput": {"s3DataSource": {"path": f"{FOLDER}/users.json"}},
        "jobOutput": {"s3DataDestination": {"path": f"{FOLDER}/output/"}}, **fields}},
        {"batchInferenceJobArn": arn})


def _params(plan: dict, operation: str) -> dict:
    return next(r["params"] for r in plan["requests"] if r["operation"] == operation)


def _no_versions(stubber: Stubber, solution: str = SOLUTION) -> None:
    """The look for the planned name before CreateSolutionVersion (not documented to refuse a name twice)."""
    stubber.add_response("list_solution_versions", {"solutionVersions": []}, {"solutionArn": solution})


def _train(stubber: Stubber, plan: dict, version_statuses=("CREATE IN_PROGRESS", "ACTIVE"), **fields) -> None:
    """A new solution (CREATE PENDING, then ACTIVE), a new filter (CREATE PENDING, then ACTIVE), the version."""
    stubber.add_response("create_solution", {"solutionArn": SOLUTION}, _params(plan, "CreateSolution"))
    _describe_solution(stubber, "CREATE PENDING")
    _describe_solution(stubber, "ACTIVE")
    stubber.add_response("create_filter", {"filterArn": FILTER}, _params(plan, "CreateFilter"))
    _describe_filter(stubber, "CREATE PENDING")
    _describe_filter(stubber, "ACTIVE")
    _no_versions(stubber)
    stubber.add_response("create_solution_version", {"solutionVersionArn": VERSION},
                         _params(plan, "CreateSolutionVersion"))
    for status in version_statuses:
        _describe_version(stubber, status, **fields)


# ---- solution training

def test_training_creates_the_solution_and_filter_waits_for_them_then_returns_the_versions_metrics(env,
                                                                                                 personalize):
    plan = solution_plan()
    op = PersonalizeSolutionOperator(task_id="train_solution", plan=plan, aws_conn_id=None)
    stubber = personalize(op)
    _train(stubber, plan)
    _metrics(stubber)

    result = op.execute({})

    stubber.assert_no_pending_responses()
    assert result == {"recipe": USER_RECIPE, "solution_arn": SOLUTION, "solution_version_arn": VERSION,
                      "status": "ACTIVE", "metrics": METRICS, "filter_arn": FILTER, "partition": "2026-11-01"}
    assert json.loads(json.dumps(result)) == result  # an XCom
    assert all(isinstance(v, float) for v in result["metrics"].values())
    assert [operation for operation, _ in stubber.sent] == [
        "CreateSolution", "DescribeSolution", "DescribeSolution", "CreateFilter", "DescribeFilter", "DescribeFilter",
        "ListSolutionVersions", "CreateSolutionVersion", "DescribeSolutionVersion", "DescribeSolutionVersion",
        "GetSolutionMetrics"]
    assert not hasattr(op, "record_delivery")  # not a destination: no outbox receipt


def test_a_solution_that_exists_is_used_once_it_is_active(env, personalize):
    plan = solution_plan(SIMILAR_RECIPE, with_filter=False, version_name="crosschannel-similar-20261101-abc123")
    version = f"{SIMILAR_SOLUTION}/9f8e7d6c"
    op = PersonalizeSolutionOperator(task_id="train_solution", plan=plan, aws_conn_id=None)
    stubber = personalize(op)
    _already_exists(stubber, "create_solution", _params(plan, "CreateSolution"))
    _describe_solution(stubber, "CREATE IN_PROGRESS", SIMILAR_SOLUTION, SIMILAR_RECIPE)  # still being created
    _describe_solution(stubber, "ACTIVE", SIMILAR_SOLUTION, SIMILAR_RECIPE)
    _no_versions(stubber, SIMILAR_SOLUTION)
    stubber.add_response("create_solution_version", {"solutionVersionArn": version},
                         _params(plan, "CreateSolutionVersion"))
    _describe_version(stubber, "ACTIVE", version, "crosschannel-similar-20261101-abc123")
    _metrics(stubber, version)

    result = op.execute({})

    stubber.assert_no_pending_responses()
    assert result["solution_arn"] == SIMILAR_SOLUTION and result["solution_version_arn"] == version
    assert result["filter_arn"] is None and result["recipe"] == SIMILAR_RECIPE
    assert "CreateFilter" not in [operation for operation, _ in stubber.sent]


def test_an_existing_solution_of_another_recipe_is_refused(env, personalize):
    plan = solution_plan()
    op = PersonalizeSolutionOperator(task_id="train_solution", plan=plan, aws_conn_id=None)
    stubber = personalize(op)
    _already_exists(stubber, "create_solution", _params(plan, "CreateSolution"))
    _describe_solution(stubber, "ACTIVE", recipe="aws-user-personalization")

    with pytest.raises(ActivationJobFailed, match=r"exists with recipe arn:aws:personalize:::recipe/"
                                                  r"aws-user-personalization, not .*aws-user-personalization-v2"):
        op.execute({})


def test_an_existing_filter_is_looked_up_by_name_in_the_dataset_group(env, personalize):
    plan = solution_plan()
    hook = PersonalizeHook(aws_conn_id=None)
    stubber = personalize(hook)
    _already_exists(stubber, "create_filter", _params(plan, "CreateFilter"))
    stubber.add_response("list_filters", {"Filters": [
        {"name": "crosschannel-other", "filterArn": f"{PREFIX}:filter/crosschannel-other", "status": "ACTIVE"},
        {"name": "crosschannel-in-stock", "filterArn": FILTER, "status": "CREATE IN_PROGRESS"}]},
        {"datasetGroupArn": GROUP})
    _describe_filter(stubber, "CREATE IN_PROGRESS")
    _describe_filter(stubber, "ACTIVE")

    found = hook.ensure_filter(_params(plan, "CreateFilter"), interval=0, timeout=60)

    stubber.assert_no_pending_responses()
    assert found["filterArn"] == FILTER and found["status"] == "ACTIVE"


@pytest.mark.parametrize("status", ["CREATE FAILED", "UPDATE_FAILED"])
def test_a_failed_filter_raises_with_its_reason(env, personalize, status):
    plan = solution_plan()
    hook = PersonalizeHook(aws_conn_id=None)
    stubber = personalize(hook)
    stubber.add_response("create_filter", {"filterArn": FILTER}, _params(plan, "CreateFilter"))
    _describe_filter(stubber, "CREATE PENDING")
    _describe_filter(stubber, status, failureReason="Items.STOCK_LOCATIONS is not in the items schema")

    with pytest.raises(ActivationJobFailed, match=rf"Personalize filter {FILTER} ended {status}: Items.STOCK_LOCATIONS"
                                                  r" is not in the items schema"):
        hook.ensure_filter(_params(plan, "CreateFilter"), interval=0, timeout=60)


def test_a_failed_training_raises_with_personalizes_reason(env, personalize):
    plan = solution_plan()
    op = PersonalizeSolutionOperator(task_id="train_solution", plan=plan, aws_conn_id=None)
    stubber = personalize(op)
    _train(stubber, plan, ("CREATE IN_PROGRESS", "CREATE FAILED"),
           failureReason="There are not enough interactions: 25 users with 2 interactions are needed")

    with pytest.raises(ActivationJobFailed, match=rf"Personalize solution version {VERSION} ended CREATE FAILED: "
                                                  r"There are not enough interactions"):
        op.execute({})

    stubber.assert_no_pending_responses()  # and no GetSolutionMetrics (the Stubber would refuse it)


def test_a_training_still_running_at_the_timeout_raises(env, personalize, monkeypatch):
    plan = solution_plan()
    op = PersonalizeSolutionOperator(task_id="train_solution", plan=plan, aws_conn_id=None)
    stubber = personalize(op)
    _train(stubber, plan, ("CREATE IN_PROGRESS",))
    monkeypatch.setattr(PersonalizeSolutionOperator, "polling", lambda self: {"interval": 0, "timeout": 0})

    with pytest.raises(TimeoutError, match=rf"Personalize solution version {VERSION} still CREATE IN_PROGRESS "
                                           r"after 0 s"):
        op.execute({})

    stubber.assert_no_pending_responses()


def test_training_waits_at_least_six_hours_and_batch_jobs_the_activation_timeout(env):
    plan = solution_plan()
    training = PersonalizeSolutionOperator(task_id="train_solution", plan=plan, aws_conn_id=None).polling()
    batch = PersonalizeBatchInferenceOperator(task_id="recommend", plan=batch_plan(), aws_conn_id=None).polling()

    assert get_config().activation.poll_timeout_minutes == 120
    assert training == {"interval": 0, "timeout": 360 * 60}
    assert batch == {"interval": 0, "timeout": 120 * 60}


def test_a_retry_resumes_the_version_its_first_try_started(env, personalize):
    """The task's first try started the version and was lost: the version of that name (found among the
    solution's versions, described newest first: summaries carry no name) is still training, and is resumed without
    calling CreateSolutionVersion (which is not documented to refuse a name twice)."""
    plan = solution_plan()
    op = PersonalizeSolutionOperator(task_id="train_solution", plan=plan, aws_conn_id=None)
    stubber = personalize(op)
    _already_exists(stubber, "create_solution", _params(plan, "CreateSolution"))
    _describe_solution(stubber, "ACTIVE")
    _already_exists(stubber, "create_filter", _params(plan, "CreateFilter"))
    stubber.add_response("list_filters", {"Filters": [{"name": "crosschannel-in-stock", "filterArn": FILTER}]},
                         {"datasetGroupArn": GROUP})
    _describe_filter(stubber, "ACTIVE")
    older = f"{SOLUTION}/11111111"
    stubber.add_response("list_solution_versions", {"solutionVersions": [
        {"solutionVersionArn": older, "status": "ACTIVE", "creationDateTime": AT - dt.timedelta(days=7)},
        {"solutionVersionArn": VERSION, "status": "CREATE IN_PROGRESS", "creationDateTime": AT}]},
        {"solutionArn": SOLUTION})
    _describe_version(stubber, "CREATE IN_PROGRESS")  # the newest first: the one of that name
    _describe_version(stubber, "ACTIVE")  # the wait
    _metrics(stubber)

    result = op.execute({})

    stubber.assert_no_pending_responses()
    assert result["solution_version_arn"] == VERSION
    assert "CreateSolutionVersion" not in [operation for operation, _ in stubber.sent]


def test_a_retry_after_a_failed_version_trains_a_renamed_one(env, personalize):
    hook = PersonalizeHook(aws_conn_id=None)
    stubber = personalize(hook)
    request = _params(solution_plan(), "CreateSolutionVersion")
    for _ in range(2):  # the planned name: failed; the renamed one: not there yet
        stubber.add_response("list_solution_versions", {"solutionVersions": [
            {"solutionVersionArn": VERSION, "status": "CREATE FAILED", "creationDateTime": AT}]},
            {"solutionArn": SOLUTION})
        _describe_version(stubber, "CREATE FAILED", failureReason="out of capacity")
    renamed = f"{SOLUTION}/22222222"
    stubber.add_response("create_solution_version", {"solutionVersionArn": renamed},
                         {**request, "name": f"{VERSION_NAME}-r1"})

    assert hook.start_solution_version(request) == renamed
    stubber.assert_no_pending_responses()


# ---- batch inference

def _started_batch_job(personalize) -> tuple[dict, PersonalizeBatchInferenceOperator, Stubber]:
    """A batch plan's operator whose CreateBatchInferenceJob is answered with JOB."""
    plan = batch_plan()
    op = PersonalizeBatchInferenceOperator(task_id="recommend", plan=plan, aws_conn_id=None)
    stubber = personalize(op)
    stubber.add_response("create_batch_inference_job", {"batchInferenceJobArn": JOB},
                         _params(plan, "CreateBatchInferenceJob"))
    return plan, op, stubber


def test_batch_inference_starts_the_planned_job_and_waits_for_it(env, personalize):
    plan, op, stubber = _started_batch_job(personalize)
    for status in ("PENDING", "IN PROGRESS", "ACTIVE"):
        _describe_job(stubber, status)

    result = op.execute({})

    stubber.assert_no_pending_responses()
    assert result == {"job_arn": JOB, "status": "ACTIVE", "output": f"{FOLDER}/output", "name": "users"}
    assert stubber.sent[0] == ("CreateBatchInferenceJob", _params(plan, "CreateBatchInferenceJob"))
    assert not hasattr(op, "record_delivery")


def test_a_failed_batch_job_raises_naming_it_with_personalizes_reason(env, personalize):
    _, op, stubber = _started_batch_job(personalize)
    _describe_job(stubber, "IN PROGRESS")
    _describe_job(stubber, "CREATE FAILED", failureReason="Access denied to s3://lake/data/activation/recommendations")

    with pytest.raises(ActivationJobFailed) as failure:
        op.execute({})

    assert str(failure.value) == (f"Personalize batch inference job {JOB} ended CREATE FAILED: Access denied to "
                                  "s3://lake/data/activation/recommendations")
    assert JOB_NAME in str(failure.value)


def test_a_batch_job_still_running_at_the_timeout_raises(env, personalize, monkeypatch):
    _, op, stubber = _started_batch_job(personalize)
    _describe_job(stubber, "IN PROGRESS")
    monkeypatch.setattr(operators, "_polling", lambda minimum_minutes=0: {"interval": 0, "timeout": 0})

    with pytest.raises(TimeoutError, match=rf"Personalize batch inference job {JOB} still IN PROGRESS after 0 s"):
        op.execute({})

    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(("existing", "created"), [
    ("IN PROGRESS", None),  # the first try's job runs on: resumed
    ("ACTIVE", None),  # ... or finished: its output is the result
    ("CREATE FAILED", f"{JOB_NAME}-r1"),  # failed: a job of a new name
])
def test_a_retry_resumes_the_batch_job_of_that_name_unless_it_failed(env, personalize, existing, created):
    plan = batch_plan()
    request = _params(plan, "CreateBatchInferenceJob")
    op = PersonalizeBatchInferenceOperator(task_id="recommend", plan=plan, aws_conn_id=None)
    stubber = personalize(op)
    _already_exists(stubber, "create_batch_inference_job", request)
    stubber.add_response("list_batch_inference_jobs", {"batchInferenceJobs": [
        {"jobName": f"{JOB_NAME}-other", "batchInferenceJobArn": f"{JOB}-other", "status": "ACTIVE"},
        {"jobName": JOB_NAME, "batchInferenceJobArn": JOB, "status": existing}]}, {"solutionVersionArn": VERSION})
    arn = JOB
    if created:
        arn = f"{PREFIX}:batch-inference-job/{created}"
        stubber.add_response("create_batch_inference_job", {"batchInferenceJobArn": arn},
                             {**request, "jobName": created})
    _describe_job(stubber, "ACTIVE", arn)

    result = op.execute({})

    stubber.assert_no_pending_responses()
    assert result["job_arn"] == arn


# ---- deferrable: the waits run in the triggerer

def _first_event(trigger):
    import asyncio

    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


def test_deferred_training_resumes_from_the_triggers_event_and_reads_the_metrics(env, personalize, monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    plan = solution_plan()
    op = PersonalizeSolutionOperator(task_id="train_solution", plan=plan, aws_conn_id=None, deferrable=True)
    stubber = personalize(op)
    _train(stubber, plan, version_statuses=())

    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})

    stubber.assert_no_pending_responses()  # solution and filter waited for in the worker, the version started
    classpath, kwargs = deferred.value.trigger.serialize()
    assert import_string(classpath) is ActivationJobTrigger
    assert kwargs["kind"] == "personalize_solution_version" and kwargs["timeout"] == 360 * 60
    assert kwargs["ids"] == {"solutionVersionArn": VERSION, "solutionArn": SOLUTION, "filterArn": FILTER}
    hook = PersonalizeHook(aws_conn_id=None)
    _describe_version(personalize(hook), "ACTIVE")
    monkeypatch.setattr(ActivationJobTrigger, "hook", lambda self: hook)
    event = _first_event(ActivationJobTrigger(**kwargs))
    _metrics(stubber)

    result = op.execute_complete({}, event)

    assert result["metrics"] == METRICS and result["filter_arn"] == FILTER and result["solution_arn"] == SOLUTION
    with pytest.raises(ActivationJobFailed, match="not enough interactions"):
        op.execute_complete({}, {"status": "failed", "message": "not enough interactions", "ids": kwargs["ids"]})


def test_a_deferred_batch_job_resumes_from_the_event(env, personalize, monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    plan = batch_plan(with_filter=False)
    op = PersonalizeBatchInferenceOperator(task_id="recommend", plan=plan, aws_conn_id=None, deferrable=True)
    stubber = personalize(op)
    stubber.add_response("create_batch_inference_job", {"batchInferenceJobArn": JOB},
                         _params(plan, "CreateBatchInferenceJob"))

    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})

    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["kind"] == "personalize_batch_inference" and kwargs["ids"] == {"batchInferenceJobArn": JOB}
    hook = PersonalizeHook(aws_conn_id=None)
    _describe_job(personalize(hook), "ACTIVE")
    monkeypatch.setattr(ActivationJobTrigger, "hook", lambda self: hook)

    assert op.execute_complete({}, _first_event(ActivationJobTrigger(**kwargs)))["job_arn"] == JOB


@pytest.mark.parametrize("kind", ["personalize_solution_version", "personalize_batch_inference"])
@pytest.mark.parametrize(("statuses", "timeout", "expected"), [
    (["IN", "ACTIVE"], 60, "success"),
    (["IN", "CREATE FAILED"], 60, "failed"),
    (["IN"], 0, "timeout"),
])
def test_the_trigger_waits_for_training_and_batch_jobs_with_the_same_rules(env, personalize, monkeypatch, kind,
                                                                         statuses, timeout, expected):
    hook = PersonalizeHook(aws_conn_id=None)
    stubber = personalize(hook)
    running = "CREATE IN_PROGRESS" if kind == "personalize_solution_version" else "IN PROGRESS"
    describe = _describe_version if kind == "personalize_solution_version" else _describe_job
    for status in statuses:
        describe(stubber, running if status == "IN" else status, failureReason="Input file has no userId")
    ids = {"solutionVersionArn": VERSION} if kind == "personalize_solution_version" else {"batchInferenceJobArn": JOB}
    monkeypatch.setattr(ActivationJobTrigger, "hook", lambda self: hook)

    event = _first_event(ActivationJobTrigger(kind=kind, ids=ids, interval=0, timeout=timeout, aws_conn_id=None,
                                              region_name="us-east-1"))

    stubber.assert_no_pending_responses()
    assert event["status"] == expected and event["ids"] == ids
    what, arn = JOBS[kind].what, next(iter(ids.values()))
    if expected == "success":
        assert event["job"]["status"] == "ACTIVE" and event["job"]["creationDateTime"].startswith("2026-11-02")
    elif expected == "failed":
        assert event["message"] == f"{what} {arn} ended CREATE FAILED: Input file has no userId"
    else:
        assert event["message"] == f"{what} {arn} still {running} after 0 s"


def test_the_workers_wait_for_a_solution_fails_on_a_solution_being_deleted(env, personalize):
    hook = PersonalizeHook(aws_conn_id=None)
    stubber = personalize(hook)
    _describe_solution(stubber, "DELETE PENDING")

    with pytest.raises(ActivationJobFailed, match=rf"Personalize solution {SOLUTION} ended DELETE PENDING"):
        wait(hook, "personalize_solution", {"solutionArn": SOLUTION}, interval=0, timeout=60)


@pytest.mark.parametrize(("existing", "created"), [("CREATE IN_PROGRESS", None), ("CREATE FAILED", "-r1")])
def test_dataset_imports_resume_by_name_through_the_same_rule(env, personalize, existing, created):
    """start_import shares the resume-or-rename rule (`_create_or_resume`) with training and batch inference."""
    dataset = AWS_ENV["CROSSCHANNEL__ACTIVATION__PERSONALIZE__ITEMS_DATASET_ARN"]
    request = {"jobName": "crosschannel-items-20261102", "datasetArn": dataset, "roleArn": ROLE,
               "dataSource": {"dataLocation": "s3://lake/data/activation/personalize/items.csv"}, "importMode": "FULL"}
    arn = f"{PREFIX}:dataset-import-job/crosschannel-items-20261102"
    hook = PersonalizeHook(aws_conn_id=None)
    stubber = personalize(hook)
    _already_exists(stubber, "create_dataset_import_job", request)
    stubber.add_response("list_dataset_import_jobs", {"datasetImportJobs": [
        {"jobName": "crosschannel-items-20261102", "datasetImportJobArn": arn, "status": existing}]},
        {"datasetArn": dataset})
    if created:
        stubber.add_response("create_dataset_import_job", {"datasetImportJobArn": arn + created},
                             {**request, "jobName": request["jobName"] + created})

    assert hook.start_import(request) == arn + (created or "")
    stubber.assert_no_pending_responses()
