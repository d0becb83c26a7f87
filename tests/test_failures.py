"""Data errors fail a task at once; transient errors keep their retries (on-call hears of a failed gate now).
Airflow's task runner fails an AirflowFailException without retrying it (task_runner: "If AirflowFailException
is raised, task should not retry")."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from crosschannel.core.dms import DmsLandingError
from crosschannel.core.errors import MissingPartition
from crosschannel.core.gates import GateFailed
from crosschannel.core.sqljobs import SqlJobError
from crosschannel.local.sagemaker import SageMakerJobError
from crosschannel.stages.activation.audiences import AudienceError
from crosschannel.stages.activation.outbox import ActivationError
from crosschannel.stages.activation.segment import SegmentDeliveryError
from crosschannel.stages.ingest.segment import SegmentFileError
from crosschannel.stages.models.datasets import ModelError
from crosschannel.stages.scoring.scores import ScoreGateFailed
from crosschannel.stages.trusted.merge import TrustedInputError
from crosschannel.wiring.aws.hooks import ActivationJobFailed

DATA_ERRORS = (MissingPartition, DmsLandingError, GateFailed, SqlJobError, AudienceError, ActivationError,
               SegmentFileError, ModelError, ScoreGateFailed, TrustedInputError)
TRANSIENT = (SegmentDeliveryError, ActivationJobFailed, SageMakerJobError)


@pytest.mark.parametrize("error", DATA_ERRORS, ids=lambda e: e.__name__)
def test_a_data_error_fails_the_task_without_retries(error):
    assert issubclass(error, AirflowFailException)
    assert issubclass(error, ValueError | RuntimeError | FileNotFoundError)  # the base it always had


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: e.__name__)
def test_a_transient_error_keeps_its_retries(error):
    assert not issubclass(error, AirflowFailException)
