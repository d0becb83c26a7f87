"""The local target's stand-ins for AWS: the DMS replication task (`dms_task`), SageMaker's training, tuning and
batch transform jobs (`sagemaker`) and the activation outbox delivery (`outbox`). Each runs the very configs and
plans the aws target hands to AWS.

Imported only by crosschannel.wiring's local steps (and the simulator), never on the aws target.
May import: crosschannel.core and crosschannel.stages.
"""
